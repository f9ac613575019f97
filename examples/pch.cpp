// The translation unit that builds the examples' precompiled header (examples/CMakeLists.txt):
// the header itself is <asyncio.hpp>, which CMake includes ahead of this empty file.
