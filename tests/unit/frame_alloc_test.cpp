// The recycling allocator behind coroutine frames and task states (detail/frame_alloc.hpp).
// Sanitizer builds bypass the pool (plain operator new), where these tests check the same
// contract through it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include <asyncio/detail/frame_alloc.hpp>

namespace {

using asyncio::detail::frame_alloc;
using asyncio::detail::frame_free;

TEST(FramePool, BlocksAreAlignedDisjointAndKeepTheirContents) {
  // 48,000 blocks of 112 bytes: past the 2 MiB of plain slabs, into the huge-page arenas.
  constexpr std::size_t kSize = 112;
  constexpr std::size_t kCount = 48'000;
  std::vector<unsigned char*> blocks;
  blocks.reserve(kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    auto* b = static_cast<unsigned char*>(frame_alloc(kSize));
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(b) % 16, 0U) << "block " << i;
    std::memset(b, static_cast<int>(i % 251), kSize);
    blocks.push_back(b);
  }
  std::set<unsigned char*> sorted(blocks.begin(), blocks.end());
  ASSERT_EQ(sorted.size(), kCount);
  const unsigned char* prev = nullptr;
  for (unsigned char* b : sorted) {  // no two blocks overlap
    if (prev != nullptr) {
      EXPECT_GE(b - prev, static_cast<std::ptrdiff_t>(kSize));
    }
    prev = b;
  }
  for (std::size_t i = 0; i < kCount; ++i) {  // nobody wrote over anybody
    const auto want = static_cast<unsigned char>(i % 251);
    EXPECT_EQ(blocks[i][0], want);
    EXPECT_EQ(blocks[i][kSize - 1], want);
  }
  for (unsigned char* b : blocks) frame_free(b, kSize);
}

#if !defined(ASYNCIO_SANITIZED) && !defined(ASYNCIO_NO_FRAME_POOL)  // else no pool to recycle
TEST(FramePool, AFreedBlockIsReusedForTheSameSizeClass) {
  void* a = frame_alloc(100);
  frame_free(a, 100);
  void* b = frame_alloc(112);  // 100 and 112 bytes share the 16-byte class 97..112
  EXPECT_EQ(a, b);
  frame_free(b, 112);
}
#endif

}  // namespace
