"""The student distribution: ``lab3 release``."""
