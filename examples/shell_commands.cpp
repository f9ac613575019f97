// shell_commands: three shell commands run at once, and each one's output is printed as soon as
// that command completes.
//
//   shell_commands [--backend epoll|io_uring]
//   shell_commands [--backend epoll|io_uring] --commands CMD...   run your own commands instead
//   shell_commands --help
//
// Each command runs as `/bin/sh -c CMD` (create_subprocess_shell) with its stdout and stderr
// going into one pipe, which a task reads to its end (communicate()) before taking the exit
// code. The three tasks are started together and awaited with as_completed(), so their results
// come in the order the commands finish, not the order they were started: the quick command's
// output is printed first although it was started second. The three commands take about 0.3 s,
// 0.15 s and no time; one after another they would take the sum, together they take about as
// long as the slowest.
//
// Each result shows when it came in (seconds since the start), the command's own run time, its
// exit code and its output. The middle command fails on purpose (exit 3): a command's exit code
// is a result like its output, it is not an error of this program. The closing lines compare the
// total time with the sum of the commands' run times; with the built-in commands the program
// exits with 1 if the total is not below that sum (they did not overlap) or if they did not
// finish quickest first. With --commands, it exits with 1 only if a command could not be started
// (short commands do not take long enough to show the overlap).
//
// Python:
//     async def run(cmd):
//         proc = await asyncio.create_subprocess_shell(
//             cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
//         out, _ = await proc.communicate()
//         return cmd, proc.returncode, out
//     for next_done in asyncio.as_completed([run(c) for c in commands]):
//         cmd, code, out = await next_done
//         print(f"{cmd!r} exited with {code}:\n{out.decode()}")
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <asyncio.hpp>

namespace {

/// What one command did.
struct Result {
  std::size_t number = 0;  // 1, 2, 3... in the order the commands were given
  std::string command;
  std::string output;
  int exit_code = 0;
  double started = 0;   // seconds since the start of the program's loop
  double finished = 0;  // when its output and exit code were in
  std::string error;    // set when the command could not be started
};

double g_t0 = 0;  // the loop time at the start

double since_start() {
  return asyncio::get_running_loop().time() - g_t0;
}

/// Runs one command to its end: its output (stdout and stderr) and exit code.
asyncio::Coro<Result> run_command(std::size_t number, std::string command) {
  Result r;
  r.number = number;
  r.command = command;
  r.started = since_start();
  // The options, set one by one: g++ 12's -Wextra flags a designated initializer that leaves
  // out members ({.stdout_ = asyncio::PIPE}).
  asyncio::SubprocessOptions options;
  options.stdout_ = asyncio::PIPE;
  options.stderr_ = asyncio::STDOUT;  // into the same pipe
  try {
    asyncio::Process p = co_await asyncio::create_subprocess_shell(command, options);
    std::pair<std::string, std::string> out = co_await p.communicate();
    r.output = std::move(out.first);
    r.exit_code = p.returncode().value_or(-1);
  } catch (const asyncio::OSError& e) {
    r.error = e.what();
  }
  r.finished = since_start();
  co_return r;
}

void print_result(const Result& r) {
  std::printf("[+%4.2fs] #%zu %s\n", r.finished, r.number, r.command.c_str());
  if (!r.error.empty()) {
    std::printf("           could not be started: %s\n", r.error.c_str());
    return;
  }
  std::printf("           exit code %d after %.2f s; %s\n", r.exit_code, r.finished - r.started,
              r.output.empty() ? "no output" : "output:");
  std::size_t start = 0;
  while (start < r.output.size()) {
    std::size_t end = r.output.find('\n', start);
    if (end == std::string::npos) end = r.output.size();
    std::printf("           | %s\n", r.output.substr(start, end - start).c_str());
    start = end + 1;
  }
  std::fflush(stdout);
}

asyncio::Coro<int> main_coro(std::vector<std::string> commands, bool own_commands) {
  g_t0 = asyncio::get_running_loop().time();
  std::printf("starting %zu commands at once:\n", commands.size());
  std::vector<asyncio::Coro<Result>> runs;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    std::printf("  #%zu %s\n", i + 1, commands[i].c_str());
    runs.push_back(run_command(i + 1, commands[i]));
  }
  std::printf("results, as each command completes:\n");
  std::fflush(stdout);

  double sum = 0;
  bool all_started = true;
  std::vector<std::size_t> order;  // command numbers in the order they completed
  for (asyncio::Coro<Result> next : asyncio::as_completed(std::move(runs))) {
    const Result r = co_await std::move(next);
    print_result(r);
    sum += r.finished - r.started;
    all_started = all_started && r.error.empty();
    order.push_back(r.number);
  }
  const double total = since_start();
  std::printf("all %zu commands done in %.2f s; one after another they would take %.2f s\n",
              commands.size(), total, sum);
  if (own_commands) co_return all_started ? 0 : 1;

  // The built-in commands: #2 is immediate, #3 takes 0.15 s and #1 0.3 s.
  const bool overlapped = total < sum;
  const bool quickest_first = order == std::vector<std::size_t>{2, 3, 1};
  if (overlapped && quickest_first && all_started) {
    std::printf("ok: the commands ran at the same time and each output came as it completed\n");
    co_return 0;
  }
  if (!overlapped) std::printf("FAILED: the total time is not below the sum of the commands\n");
  if (!quickest_first) std::printf("FAILED: the results did not come quickest first (2, 3, 1)\n");
  if (!all_started) std::printf("FAILED: a command could not be started\n");
  co_return 1;
}

void usage(const char* argv0, std::FILE* to) {
  std::fprintf(to,
               "usage: %s [--backend epoll|io_uring] [--commands CMD...]\n"
               "  runs three shell commands at once (or CMD..., each with /bin/sh -c) and prints\n"
               "  each one's output and exit code as soon as it completes\n",
               argv0);
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  std::vector<std::string> commands;
  bool own_commands = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      usage(argv[0], stdout);
      return 0;
    }
    if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      const std::string name = argv[++i];
      options.backend = name == "epoll"      ? asyncio::Backend::epoll
                        : name == "io_uring" ? asyncio::Backend::io_uring
                                             : asyncio::Backend::automatic;
    } else if (std::strcmp(argv[i], "--commands") == 0 && i + 1 < argc) {
      own_commands = true;
      for (++i; i < argc; ++i) commands.emplace_back(argv[i]);
    } else {
      usage(argv[0], stderr);
      return 2;
    }
  }
  if (!own_commands) {
    commands = {
        "sleep 0.3; echo 'slow: the report is ready'",
        "echo 'fast: nothing to wait for'",
        "sleep 0.15; echo 'medium: checked 2 disks'; echo 'medium: disk 2 is full' >&2; exit 3",
    };
  }
  try {
    return asyncio::run(main_coro(std::move(commands), own_commands), options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shell_commands: %s\n", e.what());
    return 1;
  }
}
