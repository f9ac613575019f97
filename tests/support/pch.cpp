// The translation unit that builds the test suites' precompiled header (tests/CMakeLists.txt,
// ASYNCIO_TEST_PCH): the header itself is <gtest/gtest.h>, <gmock/gmock.h> and <asyncio.hpp>,
// which CMake includes ahead of this empty file.
