// Tests for asyncio::StreamReader (asyncio/streams.hpp) fed by hand: feed_data(), feed_eof(),
// set_exception(), no transport.
//
// Most tests translate a test of CPython 3.12's Lib/test/test_asyncio/test_streams.py
// (StreamTests); the comment names it. Where CPython looks at `stream._buffer` we read the
// buffered bytes back (rest()) or look at buffered(). Tests that go further than CPython say so:
// cancellation leaves every byte in place, the single-waiter rule, handle lifetime, and a long
// run of small reads over the buffer's consumed-offset bookkeeping.
//
// Every test runs on a virtual-time loop (asyncio_test::run_virtual), so time-outs cost nothing.
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asyncio/streams.hpp>

#include "asyncio.hpp"
#include "asyncio_test.hpp"

namespace {

using asyncio_test::error_of;

using asyncio::CancelledError;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::get_running_loop;
using asyncio::IncompleteReadError;
using asyncio::LimitOverrunError;
using asyncio::RuntimeError;
using asyncio::sleep;
using asyncio::StreamReader;
using asyncio::Task;
using asyncio::ValueError;
using asyncio_test::ends_cancelled;
using testing::HasSubstr;

/// Python's StreamTests.DATA.
const std::string kData = "line1\nline2\nline3\n";

void run(Coro<void> main) {
  asyncio_test::run_virtual(std::move(main));
}

/// Whatever is buffered, read without waiting (Python: bytes(stream._buffer)).
Coro<std::string> rest(StreamReader r) {
  co_return co_await r.read(static_cast<std::ptrdiff_t>(r.buffered()));
}

/// Schedules r.feed_data(piece) for each piece, then feed_eof() if `eof`, in one callback on the
/// next loop iteration (Python: loop.call_soon(cb)). A plain function: no lambda and no braced
/// list is built inside a coroutine body (g++ 12).
void feed_then(const StreamReader& r, std::vector<std::string> pieces, bool eof) {
  get_running_loop().call_soon([r, pieces = std::move(pieces), eof] {
    for (const auto& p : pieces) r.feed_data(p);
    if (eof) r.feed_eof();
  });
}

template <class... S>
void feed_soon(const StreamReader& r, const S&... pieces) {
  feed_then(r, std::vector<std::string>{std::string(pieces)...}, false);
}

template <class... S>
void feed_eof_soon(const StreamReader& r, const S&... pieces) {
  feed_then(r, std::vector<std::string>{std::string(pieces)...}, true);
}

/// Schedules r.set_exception(runtime_error(msg)) on the next iteration.
void fail_soon(StreamReader r, std::string msg) {
  get_running_loop().call_soon(
      [r, msg] { r.set_exception(std::make_exception_ptr(std::runtime_error(msg))); });
}

std::exception_ptr runtime_error(const std::string& msg) {
  return std::make_exception_ptr(std::runtime_error(msg));
}

/// The task's result, as a Coro (for error_of()).
template <class T>
Coro<T> result_of(Task<T> t) {
  co_return co_await t;
}

using asyncio_test::holds;
using asyncio_test::what_of;

/// Every line until EOF (at most 10000).
Coro<std::vector<std::string>> all_lines(StreamReader r) {
  std::vector<std::string> lines;
  for (int i = 0; i < 10000; ++i) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    lines.push_back(std::move(line));
  }
  co_return lines;
}

// ---- Feeding -------------------------------------------------------------------------------

// test_feed_empty_data
TEST(StreamReader, FeedEmptyDataBuffersNothing) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("");
    EXPECT_EQ(r.buffered(), 0U);
    EXPECT_FALSE(r.at_eof());
    co_return;
  }());
}

// test_feed_nonempty_data
TEST(StreamReader, FeedNonEmptyDataBuffersIt) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData);
    EXPECT_EQ(r.buffered(), kData.size());
    EXPECT_EQ(co_await rest(r), kData);
  }());
}

// test_invalid_limit (a size_t limit cannot be negative; 0 is the invalid one)
TEST(StreamReader, ZeroLimitIsValueError) {
  auto err = asyncio_test::thrown<ValueError>([] { StreamReader r(0); });
  ASSERT_TRUE(err.has_value());
  EXPECT_THAT(err->what(), HasSubstr("imit"));
}

TEST(StreamReader, DefaultLimitIs64KiB) {
  StreamReader r;
  EXPECT_EQ(r.limit(), asyncio::kDefaultStreamLimit);
  EXPECT_EQ(r.limit(), 65536U);
  EXPECT_EQ(StreamReader(7).limit(), 7U);
}

TEST(StreamReader, FeedDataAfterFeedEofIsRuntimeError) {
  StreamReader r;
  r.feed_data("abc");
  r.feed_eof();
  EXPECT_THROW(r.feed_data("more"), RuntimeError);
  EXPECT_EQ(r.buffered(), 3U);
}

TEST(StreamReader, CopiesShareOneStream) {
  run([]() -> Coro<void> {
    StreamReader a;
    StreamReader b = a;  // NOLINT(performance-unnecessary-copy-initialization): the point
    a.feed_data("shared");
    EXPECT_EQ(b.buffered(), 6U);
    EXPECT_EQ(co_await b.read(3), "sha");
    EXPECT_EQ(co_await rest(a), "red");
  }());
}

// ---- read() --------------------------------------------------------------------------------

// test_read_zero
TEST(StreamReader, ReadZeroReturnsNothingAndKeepsTheBuffer) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData);
    EXPECT_EQ(co_await r.read(0), "");
    EXPECT_EQ(r.buffered(), kData.size());
  }());
}

TEST(StreamReader, ReadZeroDoesNotWaitOnAnEmptyStream) {
  run([]() -> Coro<void> {
    StreamReader r;
    const double t0 = asyncio_test::now();
    EXPECT_EQ(co_await r.read(0), "");
    EXPECT_EQ(asyncio_test::now(), t0);
  }());
}

// test_read
TEST(StreamReader, ReadWaitsForData) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.read(30));
    feed_soon(r, kData);
    EXPECT_EQ(co_await t, kData);
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

// test_read_line_breaks
TEST(StreamReader, ReadReturnsAtMostN) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("line1");
    r.feed_data("line2");
    EXPECT_EQ(co_await r.read(5), "line1");
    EXPECT_EQ(co_await rest(r), "line2");
  }());
}

TEST(StreamReader, ReadReturnsWhatIsThereWithoutWaitingForN) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.read(100));
    feed_soon(r, "ab", "cd");  // both fed before the reader runs
    EXPECT_EQ(co_await t, "abcd");
    r.feed_data("x");
    EXPECT_EQ(co_await r.read(100), "x");
  }());
}

// test_read_eof
TEST(StreamReader, ReadReturnsEmptyAtEof) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.read(1024));
    feed_eof_soon(r);
    EXPECT_EQ(co_await t, "");
    EXPECT_EQ(r.buffered(), 0U);
    EXPECT_EQ(co_await r.read(1024), "");  // and again, without waiting
    EXPECT_TRUE(r.at_eof());
  }());
}

// test_read_until_eof
TEST(StreamReader, ReadMinusOneReadsUntilEof) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.read(-1));
    feed_eof_soon(r, "chunk1\n", "chunk2");
    EXPECT_EQ(co_await t, "chunk1\nchunk2");
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

TEST(StreamReader, ReadMinusOneCollectsChunksAcrossWakeUps) {
  run([]() -> Coro<void> {
    StreamReader r(4);  // much less than the data: read(-1) is not bounded by the limit
    Task<std::string> t = create_task(r.read());
    std::string want;
    for (int i = 0; i < 20; ++i) {
      const std::string piece = "piece" + std::to_string(i) + ";";
      want += piece;
      r.feed_data(piece);
      co_await sleep(0);
      co_await sleep(0);
      EXPECT_FALSE(t.done());
    }
    r.feed_eof();
    EXPECT_EQ(co_await t, want);
  }());
}

TEST(StreamReader, ReadMinusOneThrowsAnExceptionSetMidway) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.read());
    r.feed_data("some");
    co_await sleep(0);
    fail_soon(r, "midway");
    auto err = co_await error_of(result_of(t));
    EXPECT_EQ(what_of(err), "midway");
    // As in Python (read(-1) collects blocks of read(limit)), what it had collected goes with
    // the error.
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

// test_read_exception
TEST(StreamReader, ReadThrowsTheExceptionSet) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("line\n");
    EXPECT_EQ(co_await r.read(2), "li");
    r.set_exception(std::make_exception_ptr(ValueError("bad")));
    // Even with bytes still buffered (Python checks the exception first).
    EXPECT_THROW((void)co_await r.read(2), ValueError);
    EXPECT_EQ(r.buffered(), 3U);
  }());
}

// test_read_limit
TEST(StreamReader, ReadIsNotBoundedByTheLimit) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("chunk");
    EXPECT_EQ(co_await r.read(5), "chunk");
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

// ---- readline() ----------------------------------------------------------------------------

// test_readline
TEST(StreamReader, ReadlineWaitsForTheNewline) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("chunk1 ");
    Task<std::string> t = create_task(r.readline());
    feed_soon(r, "chunk2 ", "chunk3 ", "\n chunk4");
    EXPECT_EQ(co_await t, "chunk1 chunk2 chunk3 \n");
    EXPECT_EQ(co_await rest(r), " chunk4");
  }());
}

TEST(StreamReader, ReadlineWaitsOverSeveralIterations) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.readline());
    for (const std::string& piece : asyncio_test::vec<std::string>("a", "b", "c")) {
      feed_soon(r, piece);
      co_await sleep(0);
      co_await sleep(0);
      EXPECT_FALSE(t.done());
    }
    feed_soon(r, "\nrest");
    EXPECT_EQ(co_await t, "abc\n");
    EXPECT_EQ(co_await rest(r), "rest");
  }());
}

// test_readline_limit_with_existing_data
TEST(StreamReader, ReadlineOverLimitWithDataAlreadyThere) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("li");
    r.feed_data("ne1\nline2\n");
    EXPECT_THROW((void)co_await r.readline(), ValueError);
    // The too-long line went, up to and including its newline.
    EXPECT_EQ(co_await rest(r), "line2\n");

    StreamReader r2(3);
    r2.feed_data("li");
    r2.feed_data("ne1");
    r2.feed_data("li");
    EXPECT_THROW((void)co_await r2.readline(), ValueError);
    // No newline: everything buffered went.
    EXPECT_EQ(r2.buffered(), 0U);
  }());
}

// test_at_eof
TEST(StreamReader, AtEofOnlyAfterEofAndAnEmptyBuffer) {
  run([]() -> Coro<void> {
    StreamReader r;
    EXPECT_FALSE(r.at_eof());
    r.feed_data("some data\n");
    EXPECT_FALSE(r.at_eof());
    (void)co_await r.readline();
    EXPECT_FALSE(r.at_eof());
    r.feed_data("some data\n");
    r.feed_eof();
    EXPECT_FALSE(r.at_eof());  // EOF fed, but a line is still buffered
    (void)co_await r.readline();
    EXPECT_TRUE(r.at_eof());
  }());
}

// test_readline_limit (first case)
TEST(StreamReader, ReadlineOverLimitFedLaterDropsTheLine) {
  run([]() -> Coro<void> {
    StreamReader r(7);
    feed_eof_soon(r, "chunk1", "chunk2", "chunk3\n");
    EXPECT_THROW((void)co_await r.readline(), ValueError);
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

// test_readline_limit (second case)
TEST(StreamReader, ReadlineOverLimitKeepsTheNextLine) {
  run([]() -> Coro<void> {
    StreamReader r(7);
    feed_eof_soon(r, "chunk1", "chunk2\n", "chunk3\n");
    EXPECT_THROW((void)co_await r.readline(), ValueError);
    EXPECT_EQ(co_await rest(r), "chunk3\n");
  }());
}

// test_readline_limit (strictness)
TEST(StreamReader, ReadlineLimitIsStrict) {
  run([]() -> Coro<void> {
    StreamReader r(7);
    r.feed_data("1234567\n");
    EXPECT_EQ(co_await r.readline(), "1234567\n");  // the limit does not count the newline
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("12345678\n");
    EXPECT_THROW((void)co_await r.readline(), ValueError);
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("12345678");
    EXPECT_THROW((void)co_await r.readline(), ValueError);
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

TEST(StreamReader, ReadlineOverLimitMessageIsLimitOverrunErrors) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("abcdef\n");
    auto err = co_await error_of(r.readline());
    EXPECT_TRUE(holds<ValueError>(err));
    EXPECT_FALSE(holds<LimitOverrunError>(err));
    EXPECT_EQ(what_of(err), "Separator is found, but chunk is longer than limit");
  }());
}

// test_readline_nolimit_nowait
TEST(StreamReader, ReadlineFromTheBufferDoesNotWait) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData.substr(0, 6));
    r.feed_data(kData.substr(6));
    const double t0 = asyncio_test::now();
    EXPECT_EQ(co_await r.readline(), "line1\n");
    EXPECT_EQ(asyncio_test::now(), t0);
    EXPECT_EQ(co_await rest(r), "line2\nline3\n");
  }());
}

// test_readline_eof
TEST(StreamReader, ReadlineAtEofReturnsThePartialLine) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("some data");
    r.feed_eof();
    EXPECT_EQ(co_await r.readline(), "some data");
    EXPECT_TRUE(r.at_eof());
  }());
}

TEST(StreamReader, ReadlineWaitingIsWokenByEof) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.readline());
    feed_eof_soon(r, "partial");
    EXPECT_EQ(co_await t, "partial");
  }());
}

// test_readline_empty_eof
TEST(StreamReader, ReadlineAtEofWithNothingReturnsEmpty) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_eof();
    EXPECT_EQ(co_await r.readline(), "");
    EXPECT_EQ(co_await r.readline(), "");
  }());
}

// test_readline_read_byte_count
TEST(StreamReader, ReadAfterReadlineTakesTheNextBytes) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData);
    (void)co_await r.readline();
    EXPECT_EQ(co_await r.read(7), "line2\nl");
    EXPECT_EQ(co_await rest(r), "ine3\n");
  }());
}

// test_readline_exception
TEST(StreamReader, ReadlineThrowsTheExceptionSet) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("line\n");
    EXPECT_EQ(co_await r.readline(), "line\n");
    r.set_exception(std::make_exception_ptr(ValueError("bad")));
    EXPECT_THROW((void)co_await r.readline(), ValueError);
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

// ---- readuntil() ---------------------------------------------------------------------------

// test_readuntil_separator
TEST(StreamReader, ReaduntilEmptySeparatorIsValueError) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("abc");
    auto err = co_await error_of(r.readuntil(""));
    EXPECT_TRUE(holds<ValueError>(err));
    EXPECT_THAT(what_of(err), HasSubstr("Separator should be"));
    EXPECT_EQ(r.buffered(), 3U);
  }());
}

TEST(StreamReader, ReaduntilDefaultSeparatorIsNewline) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("one\ntwo\n");
    EXPECT_EQ(co_await r.readuntil(), "one\n");
    EXPECT_EQ(co_await r.readuntil(), "two\n");
  }());
}

// test_readuntil_multi_chunks
TEST(StreamReader, ReaduntilMultiByteSeparator) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("lineAAA");
    EXPECT_EQ(co_await r.readuntil("AAA"), "lineAAA");
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("lineAAA");
    EXPECT_EQ(co_await r.readuntil("AAA"), "lineAAA");
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("lineAAAxxx");
    EXPECT_EQ(co_await r.readuntil("AAA"), "lineAAA");
    EXPECT_EQ(co_await rest(r), "xxx");
  }());
}

// test_readuntil_multi_chunks_1
TEST(StreamReader, ReaduntilSeparatorSplitAcrossChunks) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("QWEaa");
    r.feed_data("XYaa");
    r.feed_data("a");
    EXPECT_EQ(co_await r.readuntil("aaa"), "QWEaaXYaaa");
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("QWEaa");
    r.feed_data("XYa");
    r.feed_data("aa");
    EXPECT_EQ(co_await r.readuntil("aaa"), "QWEaaXYaaa");
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("aaa");
    EXPECT_EQ(co_await r.readuntil("aaa"), "aaa");
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("Xaaa");
    EXPECT_EQ(co_await r.readuntil("aaa"), "Xaaa");
    EXPECT_EQ(r.buffered(), 0U);

    r.feed_data("XXX");
    r.feed_data("a");
    r.feed_data("a");
    r.feed_data("a");
    EXPECT_EQ(co_await r.readuntil("aaa"), "XXXaaa");
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

// Goes further than CPython: the separator arrives split across wake-ups of a waiting reader.
TEST(StreamReader, ReaduntilWaitingSeesASeparatorSplitAcrossWakeUps) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.readuntil("\r\n\r\n"));
    for (const std::string& piece :
         asyncio_test::vec<std::string>("GET / HTTP/1.1\r", "\n", "Host: x\r\n\r", "\n", "body")) {
      feed_soon(r, piece);
      co_await sleep(0);
      co_await sleep(0);
    }
    EXPECT_TRUE(t.done());
    EXPECT_EQ(co_await t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(co_await rest(r), "body");
  }());
}

// test_readuntil_eof
TEST(StreamReader, ReaduntilAtEofIsIncompleteReadError) {
  run([]() -> Coro<void> {
    StreamReader r;
    const std::string data = "some dataAA";
    r.feed_data(data);
    r.feed_eof();
    try {
      (void)co_await r.readuntil("AAA");
      ADD_FAILURE() << "readuntil returned";
    } catch (const IncompleteReadError& e) {
      EXPECT_EQ(e.partial, data);
      EXPECT_FALSE(e.expected.has_value());
      EXPECT_THAT(e.what(), HasSubstr("undefined expected bytes"));
    }
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

TEST(StreamReader, ReaduntilWaitingEndsWithIncompleteReadErrorAtEof) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.readuntil("END"));
    feed_eof_soon(r, "abcEN");
    try {
      (void)co_await t;
      ADD_FAILURE() << "readuntil returned";
    } catch (const IncompleteReadError& e) {
      EXPECT_EQ(e.partial, "abcEN");
    }
  }());
}

TEST(StreamReader, ReaduntilFindsASeparatorThatCameWithTheLastChunk) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("xyz|");
    r.feed_eof();
    EXPECT_EQ(co_await r.readuntil("|"), "xyz|");
    EXPECT_TRUE(r.at_eof());
  }());
}

// test_readuntil_limit_found_sep
TEST(StreamReader, ReaduntilOverLimitKeepsTheData) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("some dataAA");
    auto err = co_await error_of(r.readuntil("AAA"));
    EXPECT_TRUE(holds<LimitOverrunError>(err));
    EXPECT_THAT(what_of(err), HasSubstr("not found"));
    EXPECT_EQ(r.buffered(), 11U);

    r.feed_data("A");
    err = co_await error_of(r.readuntil("AAA"));
    EXPECT_TRUE(holds<LimitOverrunError>(err));
    EXPECT_THAT(what_of(err), HasSubstr("is found"));
    EXPECT_EQ(co_await rest(r), "some dataAAA");
  }());
}

TEST(StreamReader, LimitOverrunErrorSaysHowMuchToConsume) {
  run([]() -> Coro<void> {
    StreamReader r(4);
    r.feed_data("0123456789|tail");
    try {
      (void)co_await r.readuntil("|");
      ADD_FAILURE() << "readuntil returned";
    } catch (const LimitOverrunError& e) {
      EXPECT_EQ(e.consumed, 10U);  // where the separator is
    }
    // The caller can skip past it and go on.
    EXPECT_EQ(co_await r.readexactly(11), "0123456789|");
    EXPECT_EQ(co_await rest(r), "tail");

    StreamReader r2(4);
    r2.feed_data("0123456789");  // no separator: everything but the last seplen-1 bytes scanned
    try {
      (void)co_await r2.readuntil("||");
      ADD_FAILURE() << "readuntil returned";
    } catch (const LimitOverrunError& e) {
      EXPECT_EQ(e.consumed, 9U);
    }
    EXPECT_EQ(r2.buffered(), 10U);
  }());
}

TEST(StreamReader, ReaduntilAtExactlyTheLimitSucceeds) {
  run([]() -> Coro<void> {
    StreamReader r(5);
    r.feed_data("abcde--fgh");
    EXPECT_EQ(co_await r.readuntil("--"), "abcde--");
    EXPECT_EQ(co_await rest(r), "fgh");
  }());
}

TEST(StreamReader, ReaduntilThrowsTheExceptionSet) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("a|b");
    r.set_exception(runtime_error("broken"));
    auto err = co_await error_of(r.readuntil("|"));
    EXPECT_EQ(what_of(err), "broken");
  }());
}

// ---- readexactly() -------------------------------------------------------------------------

// test_readexactly_zero_or_less (n is a size_t: only zero)
TEST(StreamReader, ReadexactlyZeroReturnsNothing) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data(kData);
    EXPECT_EQ(co_await r.readexactly(0), "");
    EXPECT_EQ(r.buffered(), kData.size());
  }());
}

// test_readexactly
TEST(StreamReader, ReadexactlyWaitsForAllTheBytes) {
  run([]() -> Coro<void> {
    StreamReader r;
    const std::size_t n = 2 * kData.size();
    Task<std::string> t = create_task(r.readexactly(n));
    feed_soon(r, kData, kData, kData);
    EXPECT_EQ(co_await t, kData + kData);
    EXPECT_EQ(co_await rest(r), kData);
  }());
}

// test_readexactly_limit
TEST(StreamReader, ReadexactlyIsNotBoundedByTheLimit) {
  run([]() -> Coro<void> {
    StreamReader r(3);
    r.feed_data("chunk");
    EXPECT_EQ(co_await r.readexactly(5), "chunk");
    EXPECT_EQ(r.buffered(), 0U);

    Task<std::string> t = create_task(r.readexactly(20));
    for (int i = 0; i < 7; ++i) {
      feed_soon(r, "abc");
      co_await sleep(0);
      co_await sleep(0);
    }
    EXPECT_EQ(co_await t, "abcabcabcabcabcabcab");
    EXPECT_EQ(co_await rest(r), "c");
  }());
}

// test_readexactly_eof
TEST(StreamReader, ReadexactlyAtEofIsIncompleteReadError) {
  run([]() -> Coro<void> {
    StreamReader r;
    const std::size_t n = 2 * kData.size();
    Task<std::string> t = create_task(r.readexactly(n));
    feed_eof_soon(r, kData);
    try {
      (void)co_await t;
      ADD_FAILURE() << "readexactly returned";
    } catch (const IncompleteReadError& e) {
      EXPECT_EQ(e.partial, kData);
      EXPECT_EQ(e.expected, n);
      EXPECT_STREQ(e.what(), "18 bytes read on a total of 36 expected bytes");
    }
    EXPECT_EQ(r.buffered(), 0U);
  }());
}

// test_readexactly_exception
TEST(StreamReader, ReadexactlyThrowsTheExceptionSet) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("line\n");
    EXPECT_EQ(co_await r.readexactly(2), "li");
    r.set_exception(std::make_exception_ptr(ValueError("bad")));
    EXPECT_THROW((void)co_await r.readexactly(2), ValueError);
  }());
}

TEST(StreamReader, ReadexactlyWaitingIsWokenByTheExceptionSet) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("ab");
    Task<std::string> t = create_task(r.readexactly(5));
    fail_soon(r, "reset");
    auto err = co_await error_of(result_of(t));
    EXPECT_EQ(what_of(err), "reset");
    EXPECT_EQ(r.buffered(), 2U);  // nothing consumed
  }());
}

// ---- exception() / set_exception() ---------------------------------------------------------

// test_exception
TEST(StreamReader, ExceptionReturnsWhatWasSet) {
  StreamReader r;
  EXPECT_EQ(r.exception(), nullptr);
  auto e = std::make_exception_ptr(ValueError("x"));
  r.set_exception(e);
  EXPECT_EQ(r.exception(), e);
}

// test_exception_waiter
TEST(StreamReader, SetExceptionWakesTheWaitingReader) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.readline());
    co_await sleep(0);
    r.set_exception(std::make_exception_ptr(ValueError("v")));
    EXPECT_THROW((void)co_await t, ValueError);
  }());
}

// test_exception_cancel
TEST(StreamReader, SetExceptionAfterTheWaiterWasCancelled) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.readline());
    co_await sleep(0);
    t.cancel();
    co_await sleep(0);
    r.set_exception(runtime_error("message"));  // must not touch the cancelled waiter
    co_await sleep(0);
    EXPECT_TRUE(co_await ends_cancelled(t));
    // The waiter is gone: the next read fails with the exception, not "already waiting".
    auto err = co_await error_of(r.read(1));
    EXPECT_EQ(what_of(err), "message");
  }());
}

// ---- Cancellation and the single waiter (beyond CPython's tests) ---------------------------

TEST(StreamReader, CancelledReadLosesNoData) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.read(10));
    co_await sleep(0);
    t.cancel();
    r.feed_data("hello");  // arrives in the same iteration as the cancellation
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_EQ(co_await r.read(10), "hello");
  }());
}

TEST(StreamReader, ReadCancelledAfterItsWakeUpLosesNoData) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(r.read(10));
    co_await sleep(0);
    r.feed_data("hello");  // wakes the reader...
    t.cancel();            // ...which is cancelled before it runs
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_EQ(r.buffered(), 5U);
    EXPECT_EQ(co_await r.read(10), "hello");
  }());
}

TEST(StreamReader, CancelledReadexactlyKeepsThePartialData) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("0123");
    Task<std::string> t = create_task(r.readexactly(10));
    co_await sleep(0);
    t.cancel();
    EXPECT_TRUE(co_await ends_cancelled(t));
    r.feed_data("456789");
    EXPECT_EQ(co_await r.readexactly(10), "0123456789");
  }());
}

TEST(StreamReader, CancelledReaduntilKeepsTheData) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("key=va");
    Task<std::string> t = create_task(r.readline());
    co_await sleep(0);
    t.cancel();
    EXPECT_TRUE(co_await ends_cancelled(t));
    r.feed_data("lue\n");
    EXPECT_EQ(co_await r.readline(), "key=value\n");
  }());
}

TEST(StreamReader, ReadTimingOutLeavesTheStreamUsable) {
  run([]() -> Coro<void> {
    StreamReader r;
    const double t0 = asyncio_test::now();
    EXPECT_THROW((void)co_await asyncio::wait_for(r.readexactly(4), 1.5), asyncio::TimeoutError);
    EXPECT_DOUBLE_EQ(asyncio_test::now() - t0, 1.5);
    r.feed_data("data");
    EXPECT_EQ(co_await r.readexactly(4), "data");
  }());
}

TEST(StreamReader, TwoWaitingReadersIsRuntimeError) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> first = create_task(r.read(5));
    co_await sleep(0);
    auto err = co_await error_of(r.readline());
    EXPECT_TRUE(holds<RuntimeError>(err));
    EXPECT_THAT(what_of(err),
                HasSubstr("readline() called while another coroutine is already waiting"));
    // The first reader is untouched and gets the data.
    r.feed_data("abc");
    EXPECT_EQ(co_await first, "abc");
  }());
}

TEST(StreamReader, ASecondReaderMayWaitOnceTheFirstIsDone) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> first = create_task(r.read(5));
    feed_soon(r, "one");
    EXPECT_EQ(co_await first, "one");
    Task<std::string> second = create_task(r.readexactly(3));
    feed_soon(r, "two");
    EXPECT_EQ(co_await second, "two");
  }());
}

TEST(StreamReader, ReadingFromTheBufferNeverCountsAsWaiting) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("abcdef");
    Task<std::string> waiting = create_task(r.readexactly(10));
    co_await sleep(0);
    // Another task can still take buffered bytes without waiting (Python alike).
    EXPECT_EQ(co_await r.read(2), "ab");
    r.feed_data("ghijklmn");
    EXPECT_EQ(co_await waiting, "cdefghijkl");
    EXPECT_EQ(co_await rest(r), "mn");
  }());
}

// ---- Handles and lifetime ------------------------------------------------------------------

TEST(StreamReader, ATaskKeepsTheStreamAliveWithoutAnyHandle) {
  run([]() -> Coro<void> {
    std::optional<StreamReader> r(std::in_place);
    r->feed_data("kept");
    r->feed_eof();
    Task<std::string> t = create_task(r->read());
    r.reset();  // the only handle goes before the task even starts
    EXPECT_EQ(co_await t, "kept");
  }());
}

TEST(StreamReader, ReadIsLazyUntilAwaited) {
  run([]() -> Coro<void> {
    StreamReader r;
    Coro<std::string> c = r.read(10);  // nothing runs yet: no wait registered
    r.feed_data("late");
    EXPECT_EQ(co_await std::move(c), "late");
  }());
}

TEST(StreamReader, MovedFromHandleIsInvalidStateError) {
  StreamReader a;
  StreamReader b = std::move(a);
  EXPECT_THROW(a.feed_data("x"), asyncio::InvalidStateError);  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)a.read(1), asyncio::InvalidStateError);
  EXPECT_TRUE(a.at_eof());
  b.feed_data("x");
  EXPECT_EQ(b.buffered(), 1U);
}

// ---- read(n) without a coroutine frame (the reader's ReadOp) -------------------------------
// read(n > 0) is done by an operation kept in the reader, used by one Coro at a time; a read()
// made while another Coro holds it gets an ordinary coroutine frame. Both forms must behave
// the same whichever way they are awaited, scheduled or dropped.

/// Awaits r.read(n) in the task's own frame (create_task(r.read(n)) would schedule a frame).
Coro<std::string> read_here(StreamReader r, std::ptrdiff_t n) {
  std::string got = co_await r.read(n);
  co_return got;
}

TEST(StreamReaderReadOp, ReadsMadeBeforeAnyIsAwaitedGetTheirBytesInAwaitOrder) {
  run([]() -> Coro<void> {
    StreamReader r;
    Coro<std::string> a = r.read(3);  // the reader's op
    Coro<std::string> b = r.read(3);  // a frame: the op is held by `a`
    Coro<std::string> c = r.read(3);
    r.feed_data("abcdefgh");
    EXPECT_EQ(co_await std::move(b), "abc");
    EXPECT_EQ(co_await std::move(a), "def");
    EXPECT_EQ(co_await std::move(c), "gh");
    Coro<std::string> d = r.read(3);  // the op again, free since `a` was awaited
    r.feed_eof();
    EXPECT_EQ(co_await std::move(d), "");
  }());
}

TEST(StreamReaderReadOp, AReadAwaitedTwiceIsRuntimeError) {
  run([]() -> Coro<void> {
    StreamReader r;
    r.feed_data("xy");
    Coro<std::string> a = r.read(1);
    EXPECT_EQ(co_await a, "x");
    EXPECT_FALSE(a.valid());
    EXPECT_TRUE(holds<RuntimeError>(co_await error_of(std::move(a))));
    EXPECT_EQ(co_await r.read(5), "y");
  }());
}

TEST(StreamReaderReadOp, ACoroOutlivingEveryHandleStillReads) {
  run([]() -> Coro<void> {
    std::optional<StreamReader> r(std::in_place);
    r->feed_data("kept");
    Coro<std::string> a = r->read(10);
    r.reset();  // the Coro keeps the reader
    EXPECT_EQ(co_await std::move(a), "kept");
  }());
}

TEST(StreamReaderReadOp, ScheduledAfterItsHandleIsGoneItStillReads) {
  run([]() -> Coro<void> {
    std::optional<StreamReader> r(std::in_place);
    StreamReader keep = *r;
    Coro<std::string> a = r->read(10);
    r.reset();
    Task<std::string> t = create_task(std::move(a));  // the op becomes a frame
    co_await sleep(0);
    EXPECT_FALSE(t.done());
    keep.feed_data("later");
    EXPECT_EQ(co_await t, "later");
    // The op is free again.
    keep.feed_data("more");
    Coro<std::string> b = keep.read(2);
    EXPECT_EQ(co_await std::move(b), "mo");
  }());
}

TEST(StreamReaderReadOp, GatheredReadsEachGetTheirOwnBytes) {
  run([]() -> Coro<void> {
    StreamReader r;
    feed_soon(r, "abcdef");
    auto [x, y] = co_await asyncio::gather(r.read(3), r.read(3));
    EXPECT_EQ(x, "abc");
    EXPECT_EQ(y, "def");
  }());
}

TEST(StreamReaderReadOp, CancelledWhileWaitingInTheCallerLosesNoData) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(read_here(r, 10));
    co_await sleep(0);
    t.cancel();
    r.feed_data("hello");
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_EQ(r.buffered(), 5U);
    EXPECT_EQ(co_await r.read(10), "hello");
  }());
}

TEST(StreamReaderReadOp, CancelledAfterItsWakeUpLosesNoData) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> t = create_task(read_here(r, 10));
    co_await sleep(0);
    r.feed_data("hello");
    t.cancel();
    EXPECT_TRUE(co_await ends_cancelled(t));
    EXPECT_EQ(co_await r.read(3), "hel");
    EXPECT_EQ(co_await r.read(3), "lo");
  }());
}

TEST(StreamReaderReadOp, TimingOutInWaitForLeavesTheStreamUsable) {
  run([]() -> Coro<void> {
    StreamReader r;
    const double t0 = asyncio_test::now();
    EXPECT_THROW((void)co_await asyncio::wait_for(r.read(4), 1.5), asyncio::TimeoutError);
    EXPECT_DOUBLE_EQ(asyncio_test::now() - t0, 1.5);
    feed_soon(r, "data");
    EXPECT_EQ(co_await asyncio::wait_for(r.read(4), 1.5), "data");
  }());
}

TEST(StreamReaderReadOp, ASecondWaiterWhileTheOpWaitsIsRuntimeError) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> first = create_task(read_here(r, 5));
    co_await sleep(0);
    auto err = co_await error_of(r.read(5));  // a frame: the op is busy
    EXPECT_TRUE(holds<RuntimeError>(err));
    EXPECT_THAT(what_of(err),
                HasSubstr("read() called while another coroutine is already waiting"));
    r.feed_data("abc");
    EXPECT_EQ(co_await first, "abc");
  }());
}

TEST(StreamReaderReadOp, TheOpRefusesASecondWaiterToo) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::string> first = create_task(r.readexactly(2));  // waits in a frame
    co_await sleep(0);
    Coro<std::string> c = r.read(5);  // the op
    auto err = co_await error_of(std::move(c));
    EXPECT_THAT(what_of(err),
                HasSubstr("read() called while another coroutine is already waiting"));
    r.feed_data("ab");
    EXPECT_EQ(co_await first, "ab");
  }());
}

TEST(StreamReaderReadOp, AnErrorSetWhileWaitingIsThrownThere) {
  run([]() -> Coro<void> {
    StreamReader r;
    fail_soon(r, "boom");
    auto err = co_await error_of(r.read(5));
    EXPECT_EQ(what_of(err), "boom");
    EXPECT_EQ(what_of(co_await error_of(r.read(5))), "boom");  // and at once from then on
  }());
}

TEST(StreamReaderReadOp, AnUnawaitedReadIsReportedByNameAndFreesTheReader) {
  auto loop = asyncio_test::new_virtual_loop();
  loop->set_debug(true);
  asyncio_test::RecordingHandler handler(*loop);
  loop->run_until_complete([]() -> Coro<void> {
    StreamReader r;
    { Coro<std::string> unused = r.read(4); }
    r.feed_data("next");
    EXPECT_EQ(co_await r.read(4), "next");  // the op is free again
    co_return;
  }());
  ASSERT_EQ(handler.size(), 1U);
  EXPECT_EQ(handler.at(0).message, "coroutine 'StreamReader.read' was never awaited");
}

TEST(StreamReaderReadOp, NamesItselfAsPythonDoes) {
  StreamReader r;
  Coro<std::string> a = r.read(1);
  EXPECT_STREQ(a.name(), "StreamReader.read");
  a.close();  // dropped without a report; the op is free again
  EXPECT_FALSE(a.valid());
  Coro<std::string> b = r.read(1);
  EXPECT_STREQ(b.name(), "StreamReader.read");
  b.close();
}

// ---- The buffer (beyond CPython's tests) ---------------------------------------------------

TEST(StreamReader, ManySmallReadsOverABigBufferKeepEveryByte) {
  run([]() -> Coro<void> {
    StreamReader r;
    std::string data;
    for (int i = 0; data.size() < 200000; ++i) data += std::to_string(i) + ",";
    r.feed_data(data);
    std::string got;
    // Odd-sized reads, with more data fed midway, across many compactions of the buffer.
    bool fed_more = false;
    for (int i = 0; i < 100000 && r.buffered() > 0; ++i) {
      got += co_await r.read(7);
      if (!fed_more && got.size() > data.size() / 2) {
        r.feed_data("TAIL");
        fed_more = true;
      }
    }
    EXPECT_EQ(got, data + "TAIL");
  }());
}

TEST(StreamReader, LinesOverManyFeedsComeOutInOrder) {
  run([]() -> Coro<void> {
    StreamReader r;
    Task<std::vector<std::string>> t = create_task(all_lines(r));
    std::string stream;
    for (int i = 0; i < 1000; ++i) stream += "line " + std::to_string(i) + "\n";
    // Feed in 13-byte pieces, two per iteration.
    for (std::size_t pos = 0; pos < stream.size(); pos += 26) {
      feed_soon(r, stream.substr(pos, 13),
                pos + 13 < stream.size() ? stream.substr(pos + 13, 13) : "");
      co_await sleep(0);
    }
    r.feed_eof();
    std::vector<std::string> lines = co_await t;
    EXPECT_EQ(lines.size(), 1000U);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(lines[i], "line " + std::to_string(i) + "\n");
    }
  }());
}

}  // namespace
