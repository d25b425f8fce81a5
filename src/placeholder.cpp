// Keeps a library that has no sources yet a valid CMake target.
