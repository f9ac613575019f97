// threads_bench: what crossing threads costs (issue 15; bench/RESULTS.md).
//
//   threads_bench [--iterations N] [--posts M] [--reps R] [--backend epoll|io_uring]
//                 [--only to_thread|executor|posts]
//
// Two figures, each the median of R runs (default 3), each run on a fresh asyncio::run loop:
//
//   to_thread round trip      one task does `co_await asyncio::to_thread([] {})` N times in a
//                             row (default 200,000, after a warm-up of N/20): submit to the
//                             default ThreadPoolExecutor, the worker runs the empty function and
//                             posts the result back through the loop's thread-safe queue, the
//                             loop completes the future and resumes the task. Target: <= 5 us
//                             per round trip (CPython: about 50 us; 3.11 here: about 67 us).
//   call_soon_threadsafe      two std::threads each post M callbacks (default 2,000,000) to the
//                             running loop with loop.call_soon_threadsafe; each callback counts,
//                             the last one completes a future the task awaits. Callbacks per
//                             second from the threads' start to the last arrival.
//                             Target: >= 5 million per second.
//
// Next to wall time, each line shows the process's CPU time (every thread: user + system) over
// the measured stretch, which a busy shared machine disturbs less. A reference line measures the
// floor under to_thread: the same ThreadPoolExecutor round trip with no loop (a plain thread
// submits and waits on a condition variable), i.e. two cross-thread wake-ups. --only runs one
// measurement (for profiling it: `strace -c -f`, `valgrind --tool=callgrind`).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <time.h>

#include <asyncio.hpp>

namespace {

using Clock = std::chrono::steady_clock;

/// CPU time (user + system) of every thread of the process, in seconds.
double process_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

/// One run: wall and process CPU seconds over the measured stretch.
struct Sample {
  double wall = 0;
  double cpu = 0;
};

// ---- to_thread round trip ----------------------------------------------------------------------

asyncio::Coro<Sample> to_thread_round_trips(long n) {
  for (long i = 0; i < n / 20; ++i) co_await asyncio::to_thread([] {});  // threads started, warm
  const double cpu0 = process_cpu();
  const Clock::time_point t0 = Clock::now();
  for (long i = 0; i < n; ++i) co_await asyncio::to_thread([] {});
  const Clock::time_point t1 = Clock::now();
  co_return Sample{seconds(t1 - t0), process_cpu() - cpu0};
}

/// The floor under to_thread: a plain thread submits an empty job to a ThreadPoolExecutor and
/// waits on a condition variable for it to finish (no loop, no eventfd, no future).
Sample executor_round_trips(long n) {
  asyncio::ThreadPoolExecutor pool;
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  const auto once = [&] {
    {
      const std::lock_guard<std::mutex> lock(mu);
      finished = false;
    }
    pool.submit([&] {
      {
        const std::lock_guard<std::mutex> lock(mu);
        finished = true;
      }
      cv.notify_one();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return finished; });
  };
  for (long i = 0; i < n / 20; ++i) once();
  const double cpu0 = process_cpu();
  const Clock::time_point t0 = Clock::now();
  for (long i = 0; i < n; ++i) once();
  const Clock::time_point t1 = Clock::now();
  return Sample{seconds(t1 - t0), process_cpu() - cpu0};
}

// ---- call_soon_threadsafe from two threads ----------------------------------------------------

/// What each posted callback touches; every member is used on the loop's thread only.
struct Arrivals {
  long* count;
  long total;
  Clock::time_point* last;
  asyncio::Future<void>* all_arrived;

  void arrive() const {
    if (++*count == total) {
      *last = Clock::now();
      all_arrived->set_result();
    }
  }
};

void poster(asyncio::EventLoop* loop, const std::atomic<bool>* go, Arrivals arrivals, long n) {
  while (!go->load(std::memory_order_acquire)) std::this_thread::yield();
  for (long i = 0; i < n; ++i) (void)loop->call_soon_threadsafe([arrivals] { arrivals.arrive(); });
}

asyncio::Coro<Sample> threadsafe_posts(long per_thread) {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  asyncio::Future<void> all_arrived = loop.create_future<void>();
  long count = 0;
  Clock::time_point last{};
  const Arrivals arrivals{&count, 2 * per_thread, &last, &all_arrived};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) threads.emplace_back(poster, &loop, &go, arrivals, per_thread);
  const double cpu0 = process_cpu();
  const Clock::time_point t0 = Clock::now();
  go.store(true, std::memory_order_release);
  co_await all_arrived;
  const double cpu = process_cpu() - cpu0;
  for (std::thread& t : threads) t.join();  // each has made its last post already
  co_return Sample{seconds(last - t0), cpu};
}

// ---- Reporting ---------------------------------------------------------------------------------

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// "12.3 13.1 12.8": each run's figure, in run order.
std::string each(const std::vector<double>& v, const char* format) {
  std::string out;
  for (const double x : v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, format, x);
    out += (out.empty() ? "" : " ") + std::string(buf);
  }
  return out;
}

std::vector<double> scaled(std::vector<double> v, double k) {
  for (double& x : v) x *= k;
  return v;
}

struct Figures {
  std::vector<double> per;  // the figure of each run (µs per op, or ops per second)
  std::vector<double> cpu;  // process CPU µs per op, each run
};

void add(Figures& f, const Sample& s, long ops, bool rate) {
  const auto n = static_cast<double>(ops);
  f.per.push_back(rate ? n / s.wall : s.wall * 1e6 / n);
  f.cpu.push_back(s.cpu * 1e6 / n);
}

void print_to_thread(const Figures& f) {
  const double us = median(f.per);
  std::printf(
      "to_thread round trip (empty function): %.2f us median (runs: %s us), process CPU %.2f us "
      "per round trip; target <= 5 us: %s\n",
      us, each(f.per, "%.2f").c_str(), median(f.cpu), us <= 5.0 ? "met" : "missed");
}

void print_executor(const Figures& f) {
  std::printf(
      "reference, ThreadPoolExecutor round trip without a loop (submit + condition variable): "
      "%.2f us median (runs: %s us), process CPU %.2f us per round trip\n",
      median(f.per), each(f.per, "%.2f").c_str(), median(f.cpu));
}

void print_posts(const Figures& f) {
  const double rate = median(f.per);
  std::printf(
      "call_soon_threadsafe from 2 threads: %.2f M callbacks/s median (runs: %s M/s), process "
      "CPU %.3f us per callback; target >= 5 M/s: %s\n",
      rate / 1e6, each(scaled(f.per, 1e-6), "%.2f").c_str(), median(f.cpu),
      rate >= 5e6 ? "met" : "missed");
}

struct Options {
  long iterations = 200000;
  long posts = 2000000;
  long reps = 3;
  std::string only;  // empty: every measurement
  asyncio::RunOptions run;

  [[nodiscard]] bool wants(std::string_view name) const { return only.empty() || only == name; }
};

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: threads_bench [--iterations N] [--posts M] [--reps R] "
               "[--backend epoll|io_uring]\n"
               "  --iterations N  to_thread round trips per run (default 200000)\n"
               "  --posts M       call_soon_threadsafe posts per thread, 2 threads "
               "(default 2000000)\n"
               "  --reps R        runs of each measurement; the median is shown (default 3)\n"
               "  --backend B     the loop's I/O engine (default: automatic)\n"
               "  --only NAME     run one measurement: to_thread, executor or posts\n");
}

/// False (after printing why) when the command line is not understood.
bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if ((a == "--iterations" || a == "-n") && has_value) {
      o.iterations = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--posts" && has_value) {
      o.posts = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--reps" && has_value) {
      o.reps = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--only" && has_value) {
      o.only = argv[++i];
      if (o.only != "to_thread" && o.only != "executor" && o.only != "posts") return false;
    } else if (a == "--backend" && has_value) {
      const std::string_view b = argv[++i];
      if (b != "epoll" && b != "io_uring") return false;
      o.run.backend = b == "epoll" ? asyncio::Backend::epoll : asyncio::Backend::io_uring;
    } else {
      return false;
    }
  }
  return o.iterations > 0 && o.posts > 0 && o.reps > 0;
}

const char* engine_name(asyncio::Backend b) {
  switch (b) {
    case asyncio::Backend::epoll:
      return "epoll";
    case asyncio::Backend::io_uring:
      return "io_uring";
    case asyncio::Backend::automatic:
      break;
  }
  return "automatic";
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
      usage(stdout);
      return 0;
    }
  }
  Options o;
  if (!parse(argc, argv, o)) {
    usage(stderr);
    return 2;
  }
  try {
    std::printf(
        "threads_bench: %ld to_thread round trips, 2 x %ld call_soon_threadsafe posts, median of "
        "%ld runs, engine %s\n",
        o.iterations, o.posts, o.reps, engine_name(o.run.backend));
    std::fflush(stdout);
    Figures to_thread;
    Figures floor;
    Figures posts;
    for (long r = 0; r < o.reps; ++r) {  // interleaved: run r of every measurement together
      if (o.wants("to_thread")) {
        add(to_thread, asyncio::run(to_thread_round_trips(o.iterations), o.run), o.iterations,
            false);
      }
      if (o.wants("executor")) add(floor, executor_round_trips(o.iterations), o.iterations, false);
      if (o.wants("posts")) {
        add(posts, asyncio::run(threadsafe_posts(o.posts), o.run), 2 * o.posts, true);
      }
    }
    if (!to_thread.per.empty()) print_to_thread(to_thread);
    if (!floor.per.empty()) print_executor(floor);
    if (!posts.per.empty()) print_posts(posts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "threads_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
