"""Unit tests of secrets, decoding limits, URL checks and permission errors."""
