// queue_pipeline: producer and workers around a bounded asyncio::Queue - the classic example of
// Python's asyncio.Queue documentation, with the jobs fed by a producer through a bounded queue.
//
//   queue_pipeline [--virtual] [--workers N] [--jobs N] [--seed S]
//
// A producer puts jobs (each a random sleep of 0.05-1.0 s) into a Queue of maxsize 5, so it has
// to wait whenever the workers fall behind. Each worker loops forever: get() a job, sleep, then
// task_done(). main waits for the producer and for queue.join() (every job done), then cancels
// the workers - they are stuck in get() - and waits for them to finish.
// With --virtual the sleeps cost no real time and the output is the same on every run.
//
// Python:
//     async def worker(name, queue):
//         while True:
//             sleep_for = await queue.get()
//             await asyncio.sleep(sleep_for)
//             queue.task_done()
//             print(f'{name} has slept for {sleep_for:.2f} seconds')
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include <asyncio.hpp>

namespace {

struct Options {
  bool virtual_time = false;
  int workers = 3;
  int jobs = 20;
  unsigned seed = 42;
};

/// Prints a line stamped with the loop time since `t0`.
void say(double t0, const std::string& line) {
  std::printf("[+%5.2fs] %s\n", asyncio::get_running_loop().time() - t0, line.c_str());
  std::fflush(stdout);
}

asyncio::Coro<void> producer(asyncio::Queue<double>* queue, Options opt, double t0) {
  std::mt19937 rng(opt.seed);
  std::uniform_real_distribution<double> job(0.05, 1.0);
  for (int i = 1; i <= opt.jobs; ++i) {
    const double sleep_for = job(rng);
    const double before = asyncio::get_running_loop().time();
    co_await queue->put(sleep_for);  // waits while the queue holds maxsize jobs
    const double waited = asyncio::get_running_loop().time() - before;
    if (waited > 0) {
      char line[96];
      std::snprintf(line, sizeof line, "producer waited %.2f s for room for job %d", waited, i);
      say(t0, line);
    }
  }
  say(t0, "producer is done");
}

asyncio::Coro<void> worker(std::string name, asyncio::Queue<double>* queue, double t0) {
  for (;;) {
    const double sleep_for = co_await queue->get();  // cancelled here at the end
    co_await asyncio::sleep(sleep_for);
    queue->task_done();
    char line[96];
    std::snprintf(line, sizeof line, "%s has slept for %.2f seconds", name.c_str(), sleep_for);
    say(t0, line);
  }
}

asyncio::Coro<int> amain(Options opt) {
  const double t0 = asyncio::get_running_loop().time();
  asyncio::Queue<double> queue(5);

  std::vector<asyncio::Task<void>> workers;
  for (int i = 0; i < opt.workers; ++i) {
    workers.push_back(asyncio::create_task(worker("worker-" + std::to_string(i), &queue, t0)));
  }
  co_await asyncio::create_task(producer(&queue, opt, t0));
  co_await queue.join();  // every job taken and task_done()
  const double total_slept_for = asyncio::get_running_loop().time() - t0;

  for (auto& w : workers) w.cancel();  // they wait in get() forever otherwise
  int cancelled = 0;
  for (auto& w : workers) {
    try {
      co_await w;
    } catch (const asyncio::CancelledError&) {
      ++cancelled;
    }
  }
  say(t0, "====");
  std::printf("%d workers (%d cancelled at the end) did %d jobs in %.2f seconds\n", opt.workers,
              cancelled, opt.jobs, total_slept_for);
  co_return 0;
}

Options parse(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--virtual") == 0) {
      opt.virtual_time = true;
    } else if (std::strcmp(argv[i], "--workers") == 0 && has_value) {
      opt.workers = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--jobs") == 0 && has_value) {
      opt.jobs = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--seed") == 0 && has_value) {
      opt.seed = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else {
      std::fprintf(stderr, "usage: %s [--virtual] [--workers N] [--jobs N] [--seed S]\n", argv[0]);
      std::exit(2);
    }
  }
  if (opt.workers < 1 || opt.jobs < 0) {
    std::fprintf(stderr, "%s: --workers must be >= 1 and --jobs >= 0\n", argv[0]);
    std::exit(2);
  }
  return opt;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    return asyncio::run(amain(opt), {.virtual_time = opt.virtual_time});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "queue_pipeline: %s\n", e.what());
    return 1;
  }
}
