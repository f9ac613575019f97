// detail::ChunkedFifo, the store of the loop's ready queue and of the timer heap's sorted run:
// FIFO order across chunk boundaries, indexing from the front, reuse after draining, and
// truncation (the timer run's compaction).
#include <cstddef>
#include <cstdint>
#include <deque>

#include <gtest/gtest.h>

#include <asyncio/detail/chunked_fifo.hpp>

namespace {

using Fifo = asyncio::detail::ChunkedFifo<std::uint64_t>;
constexpr std::size_t kPer = Fifo::kPerChunk;

TEST(ChunkedFifo, KeepsOrderAcrossManyChunks) {
  Fifo q;
  const std::size_t n = 10 * kPer + 3;
  for (std::uint64_t i = 0; i < n; ++i) q.push_back(i);
  ASSERT_EQ(q.size(), n);
  EXPECT_EQ(q[0], 0U);
  EXPECT_EQ(q[kPer], kPer);  // the first entry of the second chunk
  EXPECT_EQ(q[n - 1], n - 1);
  for (std::uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(q.front(), i);
    q.pop_front();
  }
  EXPECT_TRUE(q.empty());
}

TEST(ChunkedFifo, IndexesFromTheFrontAfterPops) {
  Fifo q;
  for (std::uint64_t i = 0; i < 3 * kPer; ++i) q.push_back(i);
  for (std::size_t i = 0; i < kPer + 5; ++i) q.pop_front();
  EXPECT_EQ(q.front(), kPer + 5);
  EXPECT_EQ(q[kPer - 1], 2 * kPer + 4);  // crosses into the third chunk
  q[1] = 99;                             // writable in place (the timer run's tombstones)
  q.pop_front();
  EXPECT_EQ(q.front(), 99U);
}

TEST(ChunkedFifo, WorksAgainAfterDrainingAcrossABoundaryOrClearing) {
  Fifo q;
  for (int round = 0; round < 3; ++round) {
    // Draining exactly at a chunk's end leaves no chunk in use; the next push starts over.
    for (std::uint64_t i = 0; i < kPer; ++i) q.push_back(i);
    for (std::size_t i = 0; i < kPer; ++i) q.pop_front();
    ASSERT_TRUE(q.empty());
    q.push_back(7);
    q.push_back(8);
    EXPECT_EQ(q.size(), 2U);
    EXPECT_EQ(q.front(), 7U);
    for (std::uint64_t i = 0; i < 2 * kPer; ++i) q.push_back(i);
    q.clear();
    EXPECT_TRUE(q.empty());
    q.push_back(5);
    EXPECT_EQ(q.front(), 5U);
    q.pop_front();
  }
}

TEST(ChunkedFifo, GrowsItsRingOfChunksWhileTheFrontIsNotAtItsStart) {
  // Fill 3 chunks, drain 2, then grow to 20 chunks: the ring of chunk pointers doubles while
  // its first chunk sits in the middle, and the order survives.
  Fifo q;
  std::uint64_t next_in = 0;
  std::uint64_t next_out = 0;
  for (std::size_t i = 0; i < 3 * kPer; ++i) q.push_back(next_in++);
  for (std::size_t i = 0; i < 2 * kPer; ++i) {
    ASSERT_EQ(q.front(), next_out++);
    q.pop_front();
  }
  for (std::size_t i = 0; i < 20 * kPer; ++i) q.push_back(next_in++);
  EXPECT_EQ(q[q.size() - 1], next_in - 1);
  while (!q.empty()) {
    ASSERT_EQ(q.front(), next_out++);
    q.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
}

TEST(ChunkedFifo, AQueueThatKeepsMovingStaysCorrectOverManyChunks) {
  // A queue of about one chunk that moves forward by 200 chunks (the ring of chunk pointers
  // wraps around many times): every value comes out once, in order.
  Fifo q;
  std::uint64_t next_in = 0;
  std::uint64_t next_out = 0;
  for (std::size_t step = 0; step < 200 * kPer; ++step) {
    q.push_back(next_in++);
    if (q.size() > kPer) {
      ASSERT_EQ(q.front(), next_out++);
      q.pop_front();
    }
  }
  while (!q.empty()) {
    ASSERT_EQ(q.front(), next_out++);
    q.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
}

TEST(ChunkedFifo, TruncateKeepsTheFrontEntriesAndGivesEmptiedChunksBack) {
  Fifo q;
  for (std::uint64_t i = 0; i < 10 * kPer; ++i) q.push_back(i);
  for (std::size_t i = 0; i < kPer / 2; ++i) q.pop_front();  // the front mid-chunk
  ASSERT_EQ(q.chunks_in_use(), 10U);
  q.truncate(kPer);  // what is left spans the first two chunks
  EXPECT_EQ(q.size(), kPer);
  EXPECT_EQ(q.chunks_in_use(), 2U);
  EXPECT_EQ(q.spare_chunks(), 8U);
  EXPECT_EQ(q.front(), kPer / 2);
  EXPECT_EQ(q[kPer - 1], kPer / 2 + kPer - 1);
  // Pushing goes on right behind the kept entries, reusing the spares.
  for (std::uint64_t i = 0; i < 3 * kPer; ++i) q.push_back(1000000 + i);
  EXPECT_EQ(q[kPer], 1000000U);
  EXPECT_EQ(q.spare_chunks(), 5U);
  for (std::uint64_t i = 0; i < kPer; ++i) {
    ASSERT_EQ(q.front(), kPer / 2 + i);
    q.pop_front();
  }
  EXPECT_EQ(q.front(), 1000000U);
  q.truncate(0);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.chunks_in_use(), 1U);
  q.push_back(7);
  EXPECT_EQ(q.front(), 7U);
}

TEST(ChunkedFifo, TruncateAtAChunkBoundaryThenPushStartsANewChunk) {
  Fifo q;
  for (std::uint64_t i = 0; i < 4 * kPer; ++i) q.push_back(i);
  q.truncate(2 * kPer);  // ends exactly at the end of the second chunk
  EXPECT_EQ(q.chunks_in_use(), 2U);
  q.push_back(42);
  EXPECT_EQ(q.chunks_in_use(), 3U);
  EXPECT_EQ(q[2 * kPer], 42U);
  EXPECT_EQ(q[2 * kPer - 1], 2 * kPer - 1);
}

// push_back/front/pop_front go through cached pointers that every other operation keeps up to
// date: a long random mix of all operations must agree with std::deque at every step.
TEST(ChunkedFifo, AgreesWithADequeUnderARandomMixOfOperations) {
  Fifo q;
  std::deque<std::uint64_t> model;
  std::uint64_t rng = 12345;
  auto next = [&rng]() {
    rng = rng * 6364136223846793005U + 1442695040888963407U;
    return rng >> 33U;
  };
  std::uint64_t value = 0;
  for (int step = 0; step < 20000; ++step) {
    const std::uint64_t op = next() % 100;
    if (op < 55) {
      const std::uint64_t burst = 1 + next() % (kPer / 2);
      for (std::uint64_t i = 0; i < burst; ++i) {
        q.push_back(value);
        model.push_back(value++);
      }
    } else if (op < 97) {
      const std::uint64_t burst = 1 + next() % kPer;
      for (std::uint64_t i = 0; i < burst && !model.empty(); ++i) {
        ASSERT_EQ(q.front(), model.front()) << "step " << step;
        q.pop_front();
        model.pop_front();
      }
    } else if (op < 99) {
      const std::size_t keep = model.empty() ? 0 : next() % (model.size() + 1);
      q.truncate(keep);
      model.resize(keep);
    } else {
      q.clear();
      model.clear();
    }
    ASSERT_EQ(q.size(), model.size()) << "step " << step;
    if (!model.empty()) {
      ASSERT_EQ(q.front(), model.front()) << "step " << step;
      ASSERT_EQ(q[model.size() - 1], model.back()) << "step " << step;
    }
  }
}

}  // namespace
