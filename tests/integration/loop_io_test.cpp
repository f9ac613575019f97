// Integration tests of the loop's I/O readiness, thread-safe posts and signal handling, with
// real pipes, socket pairs, threads and signals (no network: everything is in-process).
//
// Translated from CPython 3.11 Lib/test/test_asyncio/test_events.py (EventLoopTestsMixin:
// test_add_reader, test_remove_reader, test_add_writer, test_remove_writer,
// test_run_in_thread / call_soon_threadsafe, test_add_signal_handler, test_remove_signal_handler,
// test_signal_handling_while_selecting, test_signal_handling_args) and test_unix_events.py
// (SelectorEventLoopSignalTests: invalid numbers, uncatchable signals, close removes handlers),
// where it applies to C++.
//
// Every loop here is bounded: a real-time watchdog timer stops it, and the assertions then
// fail instead of the test hanging.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"

namespace {

using namespace std::chrono_literals;
using asyncio::Coro;
using asyncio::EventLoop;
using asyncio_test::LogLines;
using asyncio_test::Pipe;
using asyncio_test::read_some;
using asyncio_test::RecordingHandler;
using asyncio_test::SocketPair;
using asyncio_test::write_str;

/// Stops `loop` after `seconds` of (real or virtual) loop time, whatever else happens.
asyncio::TimerHandle watchdog(EventLoop& loop, double seconds = 5.0) {
  return loop.call_later(seconds, [&loop] { loop.stop(); });
}

/// Seconds of real time taken by `f()`.
template <class F>
double real_seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// The current disposition of `sig`.
void (*disposition(int sig))(int) {
  struct sigaction sa {};
  ::sigaction(sig, nullptr, &sa);
  return sa.sa_handler;  // NOLINT(cppcoreguidelines-pro-type-union-access)
}

// ---- readers and writers -----------------------------------------------------------------------

// test_add_reader: the reader runs once the pipe has data.
TEST(LoopReaders, ReaderRunsWhenThePipeBecomesReadable) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  std::string got;
  loop->add_reader(p.r.get(), [&] {
    got += read_some(p.r.get());
    if (got.size() >= 5) loop->stop();
  });
  loop->call_soon([&] { write_str(p.w.get(), "hello"); });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(got, "hello");
  EXPECT_TRUE(loop->remove_reader(p.r.get()));
}

// Readiness is level-triggered: unread data makes the reader run on every iteration; after
// remove_reader it runs no more.
TEST(LoopReaders, ReaderRunsAgainWhileDataRemainsAndNotAfterRemoval) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  ASSERT_EQ(write_str(p.w.get(), "x"), 1U);
  int calls = 0;
  loop->add_reader(p.r.get(), [&] {
    if (++calls == 3) {
      EXPECT_TRUE(loop->remove_reader(p.r.get()));
      loop->call_soon([&] { loop->call_soon([&] { loop->stop(); }); });  // two more iterations
    }
  });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(calls, 3);
}

// test_remove_reader: true when there was a reader, false otherwise.
TEST(LoopReaders, RemoveReaderReturnsTrueOnlyWhenThereWasOne) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  EXPECT_FALSE(loop->remove_reader(p.r.get()));
  EXPECT_FALSE(loop->remove_reader(100000));
  EXPECT_FALSE(loop->remove_reader(-1));
  loop->add_reader(p.r.get(), [] {});
  EXPECT_TRUE(loop->remove_reader(p.r.get()));
  EXPECT_FALSE(loop->remove_reader(p.r.get()));
  EXPECT_FALSE(loop->remove_writer(p.r.get()));
}

// test_add_writer / test_remove_writer.
TEST(LoopReaders, WriterRunsWhileThePipeIsWritable) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  int calls = 0;
  loop->add_writer(p.w.get(), [&] {
    write_str(p.w.get(), "w");
    if (++calls == 2) {
      EXPECT_TRUE(loop->remove_writer(p.w.get()));
      loop->stop();
    }
  });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(read_some(p.r.get()), "ww");
  EXPECT_FALSE(loop->remove_writer(p.w.get()));
}

// A second add_reader replaces the first (Python: the old handle is cancelled).
TEST(LoopReaders, AddReaderReplacesThePreviousReader) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  LogLines log;
  auto first_captures = std::make_shared<int>(0);
  loop->add_reader(p.r.get(), [&log, first_captures] { log.add("first"); });
  loop->add_reader(p.r.get(), [&] {
    log.add("second");
    read_some(p.r.get());
    loop->stop();
  });
  write_str(p.w.get(), "x");
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(log.joined(), "second");
  EXPECT_TRUE(loop->remove_reader(p.r.get()));
  EXPECT_FALSE(loop->remove_reader(p.r.get()));  // one reader, not two
}

// The reader and the writer of one fd are independent: removing one keeps the other.
TEST(LoopReaders, ReaderAndWriterOfOneSocketAreIndependent) {
  auto loop = asyncio::new_event_loop();
  SocketPair sp;
  int writes = 0;
  std::string got;
  loop->add_writer(sp.a.get(), [&] {
    ++writes;
    EXPECT_TRUE(loop->remove_writer(sp.a.get()));
    write_str(sp.b.get(), "data");  // makes `a` readable
  });
  loop->add_reader(sp.a.get(), [&] {
    got += read_some(sp.a.get());
    loop->stop();
  });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(writes, 1);
  EXPECT_EQ(got, "data");
  EXPECT_TRUE(loop->remove_reader(sp.a.get()));
}

// test_sock_client_ops-like ping-pong over a socket pair, driven only by readers.
TEST(LoopReaders, SocketPairPingPongThroughReaders) {
  auto loop = asyncio::new_event_loop();
  SocketPair sp;
  int rounds = 0;
  loop->add_reader(sp.b.get(), [&] {
    const std::string msg = read_some(sp.b.get());
    if (!msg.empty()) write_str(sp.b.get(), "pong" + msg.substr(4));
  });
  loop->add_reader(sp.a.get(), [&] {
    const std::string msg = read_some(sp.a.get());
    EXPECT_EQ(msg, "pong" + std::to_string(rounds));
    if (++rounds == 20) {
      loop->stop();
    } else {
      write_str(sp.a.get(), "ping" + std::to_string(rounds));
    }
  });
  write_str(sp.a.get(), "ping0");
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(rounds, 20);
  loop->remove_reader(sp.a.get());
  loop->remove_reader(sp.b.get());
}

// Two readers ready in the same iteration: the first removes the second, whose readiness is
// already queued; it must not run (Python: the removed handle is cancelled).
TEST(LoopReaders, ReaderRemovedByAnEarlierCallbackOfTheSameIterationDoesNotRun) {
  auto loop = asyncio::new_event_loop();
  Pipe p1;
  Pipe p2;
  LogLines log;
  auto on_ready = [&](int fd, int other) {
    read_some(fd);
    log.add(fd == p1.r.get() ? "p1" : "p2");
    loop->remove_reader(other);
    loop->remove_reader(fd);
  };
  loop->add_reader(p1.r.get(), [&] { on_ready(p1.r.get(), p2.r.get()); });
  loop->add_reader(p2.r.get(), [&] { on_ready(p2.r.get(), p1.r.get()); });
  write_str(p1.w.get(), "x");
  write_str(p2.w.get(), "y");
  loop->call_later(0.05, [&] { loop->stop(); });
  loop->run_forever();
  EXPECT_EQ(log.size(), 1U) << log.joined();
}

// Closing the write end makes the read end readable, with EOF (read returns 0).
TEST(LoopReaders, ReaderSeesEndOfFileWhenTheWriterCloses) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  ssize_t last = -2;
  loop->add_reader(p.r.get(), [&] {
    char c;
    last = ::read(p.r.get(), &c, 1);
    loop->remove_reader(p.r.get());
    loop->stop();
  });
  loop->call_soon([&] { p.w.reset(); });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(last, 0);
}

// Issue 2: add_reader with fd -1 -> ValueError.
TEST(LoopReaders, NegativeFdThrowsValueError) {
  auto loop = asyncio::new_event_loop();
  EXPECT_THROW(loop->add_reader(-1, [] {}), asyncio::ValueError);
  EXPECT_THROW(loop->add_writer(-5, [] {}), asyncio::ValueError);
}

// Issue 2: add_reader with a closed fd -> std::system_error carrying EBADF; nothing registered.
TEST(LoopReaders, ClosedFdThrowsSystemErrorWithEbadf) {
  auto loop = asyncio::new_event_loop();
  int closed_fd = -1;
  {
    Pipe p;
    closed_fd = p.r.get();
  }
  try {
    loop->add_reader(closed_fd, [] {});
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EBADF) << e.what();
  }
  EXPECT_THROW(loop->add_writer(closed_fd, [] {}), std::system_error);
  EXPECT_FALSE(loop->remove_reader(closed_fd));
  EXPECT_FALSE(loop->remove_writer(closed_fd));
}

TEST(LoopReaders, ClosedLoopRefusesReadersAndRemovesNothing) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  loop->close();
  EXPECT_THROW(loop->add_reader(p.r.get(), [] {}), asyncio::RuntimeError);
  EXPECT_THROW(loop->add_writer(p.w.get(), [] {}), asyncio::RuntimeError);
  EXPECT_FALSE(loop->remove_reader(p.r.get()));
  EXPECT_FALSE(loop->remove_writer(p.w.get()));
}

// close() forgets readers and writers and destroys their callbacks.
TEST(LoopReaders, CloseReleasesReaderAndWriterCallbacks) {
  auto loop = asyncio::new_event_loop();
  Pipe p;
  auto shared = std::make_shared<int>(0);
  loop->add_reader(p.r.get(), [shared] {});
  loop->add_writer(p.w.get(), [shared] {});
  EXPECT_EQ(shared.use_count(), 3);
  loop->close();
  EXPECT_EQ(shared.use_count(), 1);
}

// A number reused by a new fd after remove_reader() can be watched again.
TEST(LoopReaders, FdNumberReusedAfterRemovalCanBeWatchedAgain) {
  auto loop = asyncio::new_event_loop();
  auto first = std::make_unique<Pipe>();
  const int number = first->r.get();
  loop->add_reader(number, [] {});
  EXPECT_TRUE(loop->remove_reader(number));
  first.reset();
  Pipe second;  // the lowest free numbers: the same ones again
  ASSERT_EQ(second.r.get(), number);
  bool ran = false;
  loop->add_reader(second.r.get(), [&] {
    ran = true;
    loop->stop();
  });
  write_str(second.w.get(), "x");
  watchdog(*loop);
  loop->run_forever();
  EXPECT_TRUE(ran);
  loop->remove_reader(second.r.get());
}

// A reader that throws is reported through the handler; the loop goes on.
TEST(LoopReaders, ReaderExceptionIsReportedAndTheLoopKeepsRunning) {
  auto loop = asyncio::new_event_loop();
  RecordingHandler rec(*loop);
  Pipe p;
  int calls = 0;
  loop->add_reader(p.r.get(), [&] {
    read_some(p.r.get());
    if (++calls == 1) throw asyncio::ValueError("reader failed");
    loop->stop();
  });
  write_str(p.w.get(), "1");
  loop->call_later(0.01, [&] { write_str(p.w.get(), "2"); });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(rec.size(), 1U);
  EXPECT_EQ(asyncio_test::what_of(rec.at(0).exception), "reader failed");
  loop->remove_reader(p.r.get());
}

// ---- virtual time and real I/O -----------------------------------------------------------------

// Issue 2: virtual time waits for real I/O in flight. A thread writes to a watched pipe after
// 50 ms while a 10 s timer is pending: the reader runs first, well before loop time 10.
TEST(LoopVirtualTime, WaitsForRealIoBeforeJumpingToTheNextTimer) {
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Pipe p;
  LogLines log;
  double reader_time = -1;
  loop->add_reader(p.r.get(), [&] {
    read_some(p.r.get());
    reader_time = loop->time();
    log.add("reader");
    loop->remove_reader(p.r.get());
  });
  loop->call_later(10, [&] {
    log.add("timer");
    loop->stop();
  });
  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    write_str(p.w.get(), "x");
  });
  loop->run_forever();
  writer.join();
  EXPECT_EQ(log.joined(), "reader timer");
  EXPECT_GE(reader_time, 0.0);
  EXPECT_LT(reader_time, 10.0);
  EXPECT_DOUBLE_EQ(loop->time(), 10.0);
}

// With a reader that never becomes ready, the clock follows real time to the next timer and
// then lands on it exactly.
TEST(LoopVirtualTime, IdleReaderMakesTheClockWaitForTheTimerInRealTime) {
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Pipe p;
  loop->add_reader(p.r.get(), [] {});
  double fired_at = -1;
  loop->call_later(0.1, [&] {
    fired_at = loop->time();
    loop->stop();
  });
  const double real = real_seconds([&] { loop->run_forever(); });
  EXPECT_DOUBLE_EQ(fired_at, 0.1);
  EXPECT_GE(real, 0.09);
  EXPECT_TRUE(loop->remove_reader(p.r.get()));
}

// Once the last reader is gone (replaced ones included), virtual time jumps again.
TEST(LoopVirtualTime, RemovingTheLastReaderLetsTheClockJumpAgain) {
  auto loop = asyncio::new_event_loop(asyncio_test::virtual_options());
  Pipe p;
  loop->add_reader(p.r.get(), [] {});
  loop->add_reader(p.r.get(), [] {});  // a replacement, not a second watcher
  loop->add_writer(p.w.get(), [] {});
  EXPECT_TRUE(loop->remove_writer(p.w.get()));
  EXPECT_TRUE(loop->remove_reader(p.r.get()));
  loop->call_later(3600, [&] { loop->stop(); });
  const double real = real_seconds([&] { loop->run_forever(); });
  EXPECT_DOUBLE_EQ(loop->time(), 3600.0);
  EXPECT_LT(real, 5.0);
}

// ---- call_soon_threadsafe ----------------------------------------------------------------------

// test_run_in_thread / call_soon_threadsafe: a post from another thread wakes a loop blocked in
// its poll with nothing else to do.
TEST(LoopThreadsafe, CallSoonThreadsafeWakesABlockedLoop) {
  auto loop = asyncio::new_event_loop();
  std::atomic<bool> ran{false};
  EventLoop* l = loop.get();
  watchdog(*loop, 30.0);  // far away: the loop blocks until the post arrives
  std::thread poster([l, &ran] {
    std::this_thread::sleep_for(50ms);
    l->call_soon_threadsafe([l, &ran] {
      ran = true;
      l->stop();
    });
  });
  const double real = real_seconds([&] { loop->run_forever(); });
  poster.join();
  EXPECT_TRUE(ran.load());
  EXPECT_LT(real, 10.0);
}

// Many threads post at once: every callback runs, on the loop's thread, each thread's posts in
// the order it made them.
TEST(LoopThreadsafe, PostsFromManyThreadsAllRunOnTheLoopThreadInPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kPosts = 250;
  auto loop = asyncio::new_event_loop();
  EventLoop* l = loop.get();
  const auto loop_thread = std::this_thread::get_id();
  std::vector<int> last(kThreads, -1);
  int total = 0;
  int wrong_thread = 0;
  int out_of_order = 0;
  std::vector<std::thread> threads;
  loop->call_soon([&] {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPosts; ++i) {
          l->call_soon_threadsafe([&, t, i] {
            if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
            if (i != last[static_cast<std::size_t>(t)] + 1) ++out_of_order;
            last[static_cast<std::size_t>(t)] = i;
            if (++total == kThreads * kPosts) l->stop();
          });
        }
      });
    }
  });
  watchdog(*loop, 30.0);
  loop->run_forever();
  for (auto& t : threads) t.join();
  EXPECT_EQ(total, kThreads * kPosts);
  EXPECT_EQ(wrong_thread, 0);
  EXPECT_EQ(out_of_order, 0);
}

// A cancelled thread-safe handle does not run (cancelled before the loop picked it up).
TEST(LoopThreadsafe, CancelledThreadsafeHandleDoesNotRun) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  asyncio::Handle h;
  std::thread poster([&] { h = loop->call_soon_threadsafe([&] { log.add("cancelled"); }); });
  poster.join();
  h.cancel();
  loop->call_soon_threadsafe([&] {
    log.add("kept");
    loop->stop();
  });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(log.joined(), "kept");
}

TEST(LoopThreadsafe, CallSoonThreadsafeOnAClosedLoopThrowsRuntimeError) {
  auto loop = asyncio::new_event_loop();
  loop->close();
  bool threw = false;
  std::thread poster([&] {
    try {
      loop->call_soon_threadsafe([] {});
    } catch (const asyncio::RuntimeError&) {
      threw = true;
    }
  });
  poster.join();
  EXPECT_TRUE(threw);
}

// Posts still queued when the loop closes are dropped, and their captures destroyed.
TEST(LoopThreadsafe, PostsPendingAtCloseAreDroppedAndReleased) {
  auto loop = asyncio::new_event_loop();
  auto shared = std::make_shared<int>(0);
  std::thread poster([&] {
    for (int i = 0; i < 10; ++i) loop->call_soon_threadsafe([shared] { ++*shared; });
  });
  poster.join();
  loop->close();
  EXPECT_EQ(*shared, 0);
  EXPECT_EQ(shared.use_count(), 1);
}

// run_in_executor's job posting back while a task awaits it, many times over (TSan target).
TEST(LoopThreadsafe, ExecutorResultsArriveThroughThreadsafePosts) {
  const int sum = asyncio::run([]() -> Coro<int> {
    EventLoop& loop = asyncio::get_running_loop();
    int total = 0;
    for (int i = 0; i < 50; ++i) total += co_await loop.run_in_executor(nullptr, [i] { return i; });
    co_return total;
  }());
  EXPECT_EQ(sum, 49 * 50 / 2);
}

// ---- signals -----------------------------------------------------------------------------------

// test_add_signal_handler: the callback runs as an ordinary loop callback (so it may use the
// loop), never inside the signal handler itself.
TEST(LoopSignals, HandlerRunsAsALoopCallbackWhenTheSignalIsRaised) {
  auto loop = asyncio::new_event_loop();
  bool in_signal_handler_call = true;
  int calls = 0;
  loop->add_signal_handler(SIGUSR1, [&] {
    ++calls;
    in_signal_handler_call = false;
    EXPECT_EQ(&asyncio::get_running_loop(), loop.get());
    loop->stop();
  });
  loop->call_soon([&] {
    ::raise(SIGUSR1);
    EXPECT_EQ(calls, 0);  // not run inside raise()
  });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(in_signal_handler_call);
  EXPECT_TRUE(loop->remove_signal_handler(SIGUSR1));
}

// test_signal_handling_while_selecting: kill(getpid()) from another thread wakes the loop
// blocked in its poll. Under TSan the signal is sent only once this thread sleeps (the loop
// waits for events): a signal landing earlier would be held by TSan until this thread's next
// intercepted call, and a loop asleep in io_uring_enter makes none until the watchdog wakes it
// (asyncio_test::thread_state says more).
TEST(LoopSignals, SignalFromAnotherThreadWakesABlockedLoop) {
  auto loop = asyncio::new_event_loop();
  int calls = 0;
  loop->add_signal_handler(SIGUSR2, [&] {
    ++calls;
    loop->stop();
  });
  watchdog(*loop, 30.0);
  std::thread killer([] {
    std::this_thread::sleep_for(50ms);
    if (asyncio_test::kThreadSanitizer) {
      // Bounded: if the loop never sleeps, the signal goes anyway and the test reports the delay.
      (void)asyncio_test::wait_until([] { return asyncio_test::thread_state(::getpid()) == 'S'; },
                                     20s);
    }
    ::kill(::getpid(), SIGUSR2);
  });
  const double real = real_seconds([&] { loop->run_forever(); });
  killer.join();
  EXPECT_EQ(calls, 1);
  EXPECT_LT(real, 10.0);
  EXPECT_TRUE(loop->remove_signal_handler(SIGUSR2));
}

// Each delivered signal runs the callback once.
TEST(LoopSignals, EachDeliveredSignalRunsTheCallbackOnce) {
  auto loop = asyncio::new_event_loop();
  int calls = 0;
  loop->add_signal_handler(SIGUSR1, [&] { ++calls; });
  loop->call_soon([] {
    for (int i = 0; i < 3; ++i) ::raise(SIGUSR1);
  });
  loop->call_later(0.05, [&] { loop->stop(); });
  loop->run_forever();
  EXPECT_EQ(calls, 3);
  loop->remove_signal_handler(SIGUSR1);
}

// test_remove_signal_handler: true once, then false; the default disposition is restored.
TEST(LoopSignals, RemoveSignalHandlerReturnsTrueOnceAndRestoresTheDefault) {
  auto loop = asyncio::new_event_loop();
  EXPECT_FALSE(loop->remove_signal_handler(SIGUSR1));
  loop->add_signal_handler(SIGUSR1, [] {});
  EXPECT_NE(disposition(SIGUSR1), SIG_DFL);
  EXPECT_TRUE(loop->remove_signal_handler(SIGUSR1));
  EXPECT_EQ(disposition(SIGUSR1), SIG_DFL);
  EXPECT_FALSE(loop->remove_signal_handler(SIGUSR1));
}

TEST(LoopSignals, AddSignalHandlerReplacesThePreviousOne) {
  auto loop = asyncio::new_event_loop();
  LogLines log;
  loop->add_signal_handler(SIGUSR1, [&] { log.add("first"); });
  loop->add_signal_handler(SIGUSR1, [&] {
    log.add("second");
    loop->stop();
  });
  loop->call_soon([] { ::raise(SIGUSR1); });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(log.joined(), "second");
  EXPECT_TRUE(loop->remove_signal_handler(SIGUSR1));
  EXPECT_FALSE(loop->remove_signal_handler(SIGUSR1));
}

// Issue 2 / test_add_signal_handler_...: an invalid number -> ValueError.
TEST(LoopSignals, InvalidSignalNumberThrowsValueError) {
  auto loop = asyncio::new_event_loop();
  for (int sig : {0, -1, NSIG, NSIG + 10, 100000}) {
    EXPECT_THROW(loop->add_signal_handler(sig, [] {}), asyncio::ValueError) << sig;
    EXPECT_FALSE(loop->remove_signal_handler(sig)) << sig;
  }
}

// Issue 2: SIGKILL (and SIGSTOP) cannot be caught -> RuntimeError; nothing is left installed.
TEST(LoopSignals, UncatchableSignalThrowsRuntimeError) {
  auto loop = asyncio::new_event_loop();
  EXPECT_THROW(loop->add_signal_handler(SIGKILL, [] {}), asyncio::RuntimeError);
  EXPECT_THROW(loop->add_signal_handler(SIGSTOP, [] {}), asyncio::RuntimeError);
  EXPECT_FALSE(loop->remove_signal_handler(SIGKILL));
  EXPECT_FALSE(loop->remove_signal_handler(SIGSTOP));
  // The loop still handles other signals normally.
  int calls = 0;
  loop->add_signal_handler(SIGUSR1, [&] {
    ++calls;
    loop->stop();
  });
  loop->call_soon([] { ::raise(SIGUSR1); });
  watchdog(*loop);
  loop->run_forever();
  EXPECT_EQ(calls, 1);
  loop->remove_signal_handler(SIGUSR1);
}

// test_close (unix events): closing the loop removes its signal handlers.
TEST(LoopSignals, ClosingTheLoopRemovesItsSignalHandlers) {
  auto loop = asyncio::new_event_loop();
  auto shared = std::make_shared<int>(0);
  loop->add_signal_handler(SIGUSR1, [shared] {});
  loop->add_signal_handler(SIGUSR2, [shared] {});
  loop->close();
  EXPECT_EQ(disposition(SIGUSR1), SIG_DFL);
  EXPECT_EQ(disposition(SIGUSR2), SIG_DFL);
  EXPECT_EQ(shared.use_count(), 1);
  EXPECT_THROW(loop->add_signal_handler(SIGUSR1, [] {}), asyncio::RuntimeError);
  EXPECT_FALSE(loop->remove_signal_handler(SIGUSR1));
}

TEST(LoopSignals, SignalCallbackExceptionIsReportedThroughTheHandler) {
  auto loop = asyncio::new_event_loop();
  RecordingHandler rec(*loop);
  loop->add_signal_handler(SIGUSR1, [] { throw asyncio::ValueError("in signal callback"); });
  loop->call_soon([] { ::raise(SIGUSR1); });
  loop->call_later(0.05, [&] { loop->stop(); });
  loop->run_forever();
  ASSERT_EQ(rec.size(), 1U);
  EXPECT_EQ(asyncio_test::what_of(rec.at(0).exception), "in signal callback");
  loop->remove_signal_handler(SIGUSR1);
}

// A coroutine can wait for a signal through a future set by the handler.
TEST(LoopSignals, TaskWaitsForASignalThroughAFuture) {
  const int got = asyncio::run([]() -> Coro<int> {
    EventLoop& loop = asyncio::get_running_loop();
    asyncio::Future<int> fut = loop.create_future<int>();
    loop.add_signal_handler(SIGUSR2, [fut]() mutable {
      if (!fut.done()) fut.set_result(SIGUSR2);
    });
    loop.call_soon([] { ::raise(SIGUSR2); });
    const int sig = co_await fut;
    loop.remove_signal_handler(SIGUSR2);
    co_return sig;
  }());
  EXPECT_EQ(got, SIGUSR2);
}

}  // namespace
