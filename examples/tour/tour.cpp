// asyncio-tour: every seed example, in the order of the tutorial (docs/tutorial/), in real time.
//
//   asyncio-tour                 run them all (about 28 s: the articles' own 1-3 s sleeps)
//   asyncio-tour --list          name, title and article of each linked example
//   asyncio-tour NAME...         run only these, in the order given
//   asyncio-tour --virtual ...   under virtual time: the same output and loop times, at once
// The whole tour ends with the stand-alone programs of examples/*.cpp, run under virtual time
// or in their self-contained modes (servers on loopback, port 0); primes_ticker runs in real
// time, as threads do (about 0.9 s of counting), and so do the child processes of
// shell_commands and pipeline, which brings the whole tour to about 33 s.
//
// Each line shows the loop time at which it was printed, relative to the example's start:
//   [+1.00s] hello
// Lines printed after the example's loop stopped show "[no loop]".
//
// Time budget: everything runs in real time, unscaled, because watching "world" arrive two
// seconds after "hello" is the point. The examples keep the articles' sleeps (1-3 s; the
// cancellation example polls for 6 s), which adds up to about 28 s; new examples must keep
// the total under 30 s (seeds_test checks the sum of the loop times).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/wait.h>

#include "../seeds/seeds.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void list() {
  for (const seeds::Seed& seed : seeds::registry()) {
    std::cout << std::left << std::setw(24) << seed.name << ' ' << seed.title << "\n"
              << std::setw(24) << ""
              << " article " << seed.article << '\n';
  }
}

/// Runs one seed, printing its header, its lines and its duration. False if it threw.
bool run_one(const seeds::Seed& seed, std::size_t index, std::size_t count,
             const asyncio::RunOptions& options) {
  std::cout << "\n== " << index << '/' << count << ' ' << seed.name << ": " << seed.title << '\n'
            << "   article " << seed.article << "\n   source  examples/seeds/" << seed.name
            << ".cpp (program seed_" << seed.name << ")\n";
  std::optional<double> last;  // loop time of the last line printed inside a loop
  seeds::set_sink([&last](double t, std::string_view line) {
    if (!std::isnan(t)) {
      last = t;
    }
    std::cout << std::left << std::setw(9) << ('[' + seeds::format_time(t) + ']') << ' ' << line
              << '\n'
              << std::flush;
  });
  Clock::time_point start = Clock::now();
  bool ok = true;
  try {
    seeds::run(seed, options);
  } catch (const asyncio::CancelledError& error) {
    std::cout << "!! cancelled: " << error.what() << '\n';
    ok = false;
  } catch (const std::exception& error) {
    std::cout << "!! failed: " << error.what() << '\n';
    ok = false;
  }
  std::cout << "   " << (last ? "last line at loop time " + seeds::format_time(*last) + ", " : "")
            << "wall time " << std::fixed << std::setprecision(2) << seconds_since(start) << " s\n"
            << std::defaultfloat;
  return ok;
}

/// The stand-alone programs of examples/*.cpp (issue 4's queue and semaphore examples, the
/// network programs, issue 15's thread program), run as child processes, each with the
/// arguments that make it self-contained: --virtual for the timed ones (in real time they would
/// take the tour past 30 s), a self-test or a demo on loopback for the servers. Appends the name
/// of each program that failed to `failed`.
void run_example_programs(std::vector<std::string>& failed) {
  struct Program {
    const char* name;
    const char* args;  // `%s` stands for the directory of the programs
    const char* title;
  };
  const Program programs[] = {
      {"queue_pipeline", "--virtual",
       "producer/consumer: a bounded Queue, 3 workers, join(), then cancel"},
      {"rate_limiter", "--virtual", "a Semaphore lets at most 3 requests run at once"},
      {"sock_echo", "--virtual",
       "one thread serves many clients: sock_accept/sock_recv/sock_sendall, on both engines"},
      // Real sockets keep the clock real even under --virtual: a 0.5 s backend call, not 1 s,
      // keeps the real-time tour under its 30 s.
      {"many_clients", "--virtual --delay 0.5",
       "article 004 with streams: client 2 is served while client 1 waits for the backend"},
      {"echo_client", "--spawn-server %s/echo_server --connections 4 --messages 50 --size 4096",
       "echo_server + echo_client: streams under load, every echoed byte checked"},
      {"chat_server", "--demo",
       "a chat room: a queue and a writer task per client, a slow client is disconnected"},
      {"http_hello", "--self-test", "HTTP/1.1 keep-alive and pipelining: Hello, World!"},
      {"multicore_echo", "--self-test",
       "an event loop per thread, one port (reuse_port), stopped with call_soon_threadsafe"},
      // Real threads and real time (about 0.9 s): --virtual cannot speed up a CPU-bound thread.
      {"primes_ticker", "",
       "article 004: threads for CPU-bound work - to_thread counts primes while the loop ticks"},
      // Child processes, in real time (about 0.3 s and 0.25 s).
      {"shell_commands", "",
       "three shell commands at once: each one's output is printed as soon as it completes"},
      {"pipeline", "--lines 10",
       "a child's stdout streamed line by line through this program into sed's stdin"},
      {"udp_echo", "--self-test --count 50",
       "datagrams: a DatagramProtocol echo server and a DatagramSocket client"},
      {"tls_echo", "--self-test",
       "TLS: an echo server and client with ssl::SSLContext (throwaway certificates, 1 MiB)"},
  };
  for (const Program& p : programs) {
    std::string args = p.args;
    std::string shown = p.args;  // without the directory
    if (const std::size_t at = args.find("%s"); at != std::string::npos) {
      args.replace(at, 2, ASYNCIO_EXAMPLES_BIN_DIR);
      shown.erase(at, 3);
    }
    std::cout << "\n== " << p.name << ": " << p.title << "\n   source  examples/" << p.name
              << ".cpp (program " << p.name
              << (shown.empty() ? std::string() : ", run here with " + shown) << ")\n"
              << std::flush;
    const std::string command = std::string(ASYNCIO_EXAMPLES_BIN_DIR) + '/' + p.name + ' ' + args;
    const int status = std::system(command.c_str());  // NOLINT(cert-env33-c): our own program
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 77) {
      std::cout << "   skipped: " << p.name << " cannot run here\n";  // e.g. no openssl command
    } else if (status != 0) {
      std::cout << "!! failed: " << p.name << '\n';
      failed.emplace_back(p.name);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  std::vector<const seeds::Seed*> chosen;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--list") {
      list();
      return 0;
    }
    if (arg == "--virtual") {
      options.virtual_time = true;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << "usage: " << argv[0] << " [--list] [--virtual] [NAME...]\n";
      return 0;
    } else if (const seeds::Seed* seed = seeds::find(arg)) {
      chosen.push_back(seed);
    } else {
      std::cerr << argv[0] << ": no example named '" << arg << "'; --list shows them\n";
      return 2;
    }
  }
  const bool run_programs = chosen.empty();  // the whole tour, not a chosen subset
  if (chosen.empty()) {
    for (const seeds::Seed& seed : seeds::registry()) {
      chosen.push_back(&seed);
    }
  }

  std::cout << "asyncio-cpp tour: " << chosen.size()
            << " examples from the seed articles (docs/tutorial/), "
            << (options.virtual_time ? "virtual time" : "real time") << '\n';
  Clock::time_point start = Clock::now();
  std::vector<std::string> failed;  // the names of the examples and programs that failed
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    if (!run_one(*chosen[i], i + 1, chosen.size(), options)) {
      failed.emplace_back(chosen[i]->name);
    }
  }
  if (run_programs) {
    run_example_programs(failed);
  }
  // The names again at the very end, where a log cut short in the middle still shows them.
  std::cout << "\ntour finished: " << chosen.size() << " examples"
            << (run_programs ? " and the example programs" : "") << ", " << failed.size()
            << " failed";
  for (std::size_t i = 0; i < failed.size(); ++i) {
    std::cout << (i == 0 ? " (" : ", ") << failed[i] << (i + 1 == failed.size() ? ")" : "");
  }
  std::cout << ", total wall time " << std::fixed << std::setprecision(2) << seconds_since(start)
            << " s\n";
  return failed.empty() ? EXIT_SUCCESS : EXIT_FAILURE;
}
