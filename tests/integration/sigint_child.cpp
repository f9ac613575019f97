// sigint_child: the program tests/integration/sigint_test.cpp presses Ctrl-C in (it sends the
// process SIGINT with kill(2)). API section 2: "SIGINT (Ctrl-C) while run() runs cancels the main
// task; run then throws asyncio::KeyboardInterrupt" - after the cleanup.
//
//   sigint_child [--slow-cleanup SECONDS] [--ignore-sigint] [--finish-after SECONDS]
//
// asyncio::run(amain()): amain starts a second task, lets it start, prints "ready" and sleeps
// for an hour (or --finish-after SECONDS, then prints "main returned"). Both catch
// CancelledError, print, and rethrow it:
//   amain   "cleanup ran"; with --slow-cleanup it first prints "slow cleanup started" and
//           sleeps SECONDS, printing "slow cleanup interrupted" if that sleep is cancelled
//   other   "other task cleaned" (it is only ever cancelled by run's shutdown)
// Around run: KeyboardInterrupt prints "KeyboardInterrupt" and makes the exit status 130 (as a
// shell reports a process that Ctrl-C ended). Then, whatever happened, SIGINT's disposition must
// be what it was before run: "handler restored", else "handler NOT restored" and status 3.
// --ignore-sigint sets SIGINT to SIG_IGN before run (as `nohup` or a background job of a
// non-interactive shell has it): run must leave SIGINT alone then.
// Every line is flushed as it is printed: stdout is a pipe.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include <asyncio.hpp>

namespace {

struct Options {
  double slow_cleanup = 0;   // seconds; 0: the cleanup does not wait
  double finish_after = -1;  // seconds; < 0: an hour
  bool ignore_sigint = false;
};

void say(const char* line) {
  std::printf("%s\n", line);
  std::fflush(stdout);
}

using Disposition = void (*)(int);

Disposition sigint_disposition() {
  struct sigaction old {};
  if (::sigaction(SIGINT, nullptr, &old) != 0) return SIG_ERR;
  return old.sa_handler;  // NOLINT(cppcoreguidelines-pro-type-union-access)
}

asyncio::Coro<void> other() {
  try {
    co_await asyncio::sleep(3600);
  } catch (const asyncio::CancelledError&) {
    say("other task cleaned");
    throw;
  }
}

/// The cleanup of amain, run after its sleep was cancelled; the cancellation goes on afterwards.
asyncio::Coro<void> cleanup(double slow) {
  if (slow > 0) {
    say("slow cleanup started");
    try {
      co_await asyncio::sleep(slow);
    } catch (const asyncio::CancelledError&) {
      say("slow cleanup interrupted");
      throw;
    }
  }
  say("cleanup ran");
}

asyncio::Coro<void> amain(Options o) {
  asyncio::Task<void> second = asyncio::create_task(other());
  co_await asyncio::sleep(0);  // the second task starts, and waits in its sleep
  say("ready");
  std::exception_ptr err;
  try {
    co_await asyncio::sleep(o.finish_after < 0 ? 3600.0 : o.finish_after);
  } catch (const asyncio::CancelledError&) {
    err = std::current_exception();
  }
  if (err) {
    co_await cleanup(o.slow_cleanup);
    std::rethrow_exception(err);
  }
  say("main returned");  // `second` is left to run's shutdown, which cancels it
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--slow-cleanup") == 0 && has_value) {
      o.slow_cleanup = std::strtod(argv[++i], nullptr);
    } else if (std::strcmp(argv[i], "--finish-after") == 0 && has_value) {
      o.finish_after = std::strtod(argv[++i], nullptr);
    } else if (std::strcmp(argv[i], "--ignore-sigint") == 0) {
      o.ignore_sigint = true;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: %s [--slow-cleanup SECONDS] [--ignore-sigint] [--finish-after SECONDS]\n",
                 argv[0]);
    return 2;
  }
  if (o.ignore_sigint) (void)std::signal(SIGINT, SIG_IGN);
  const Disposition before = sigint_disposition();
  int status = 0;
  try {
    asyncio::run(amain(o));
  } catch (const asyncio::KeyboardInterrupt&) {
    say("KeyboardInterrupt");
    status = 130;
  } catch (const asyncio::CancelledError&) {
    say("CancelledError");
    status = 1;
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    status = 1;
  }
  if (sigint_disposition() == before) {
    say("handler restored");
  } else {
    say("handler NOT restored");
    status = 3;
  }
  return status;
}
