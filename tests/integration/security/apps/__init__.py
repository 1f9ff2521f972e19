"""Small runnel apps that the security tests run in real ``runnel worker`` processes.

At import time each module takes its app name from ``ENGINE_TEST_APP`` (as the engine
test apps do), so the test process can declare the same App under the same name.
"""
