// echo_client: a load generator for echo_server that checks every byte it gets back.
//
//   echo_client [--host HOST] [--port PORT] [--connections N] [--messages M] [--size BYTES]
//               [--backend epoll|io_uring] [--spawn-server PATH]
//
// Opens N connections at once (default 10) to HOST:PORT (default 127.0.0.1:8888); each sends M
// messages (default 100) of BYTES bytes (default 1024), one at a time: it writes a message,
// reads exactly as many bytes back (readexactly) and compares them byte for byte with what it
// sent. Each message has its own pattern, so a byte from the wrong message or the wrong place
// is caught. At the end it prints the throughput and the errors, and exits with 1 if any byte
// differed or any connection failed.
//
// --spawn-server PATH starts PATH (an echo_server) on port 0 first, reads the port from its
// first line ("listening on HOST:PORT"), runs against it, and stops it (SIGTERM) at the end
// (the server also gets SIGTERM if the client dies first): the self-contained mode the tour
// and the tests use.
//
// Writing the whole message before reading (instead of write, drain, read) matters for big
// messages: the transport sends in the background while the client reads, so neither side
// waits for the other with full buffers.
//
// Python:
//     reader, writer = await asyncio.open_connection(host, port)
//     for m in range(messages):
//         writer.write(message)
//         echo = await reader.readexactly(len(message))
//         await writer.drain()
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 8888;
  int connections = 10;
  int messages = 100;
  std::size_t size = 1024;
  std::string backend;       // empty: automatic
  std::string spawn_server;  // empty: use a running server
};

struct Stats {
  std::uint64_t bytes = 0;  // echoed and checked
  int round_trips = 0;
  int mismatches = 0;                // messages that came back different
  int errors = 0;                    // connections that failed
  std::vector<std::string> reports;  // the first few problems
};

void report(Stats& stats, const std::string& what) {
  if (stats.reports.size() < 10) stats.reports.push_back(what);
}

/// Message `m` of connection `c`: printable bytes in a pattern of its own.
std::string make_message(int c, int m, std::size_t size) {
  std::string msg(size, ' ');
  const std::size_t seed = static_cast<std::size_t>(c) * 7919 + static_cast<std::size_t>(m) * 31;
  for (std::size_t i = 0; i < size; ++i) {
    msg[i] = static_cast<char>('!' + (seed + i * 13 + i / 94) % 94);
  }
  if (size > 0) msg[size - 1] = '\n';
  return msg;
}

asyncio::Coro<void> one_connection(const Options* opt, int c, Stats* stats) {
  try {
    auto connection =
        co_await asyncio::open_connection(opt->host, static_cast<std::uint16_t>(opt->port));
    asyncio::StreamReader reader = connection.first;
    asyncio::StreamWriter writer = connection.second;
    for (int m = 0; m < opt->messages; ++m) {
      const std::string msg = make_message(c, m, opt->size);
      writer.write(msg);
      const std::string echo = co_await reader.readexactly(opt->size);
      co_await writer.drain();
      if (echo != msg) {
        ++stats->mismatches;
        std::size_t at = 0;
        while (at < msg.size() && echo[at] == msg[at]) ++at;
        report(*stats, "connection " + std::to_string(c) + " message " + std::to_string(m) +
                           ": first wrong byte at offset " + std::to_string(at));
      }
      stats->bytes += opt->size;
      ++stats->round_trips;
    }
    writer.close();
    co_await writer.wait_closed();
  } catch (const std::exception& e) {
    ++stats->errors;
    report(*stats, "connection " + std::to_string(c) + ": " + e.what());
  }
}

asyncio::Coro<int> main_coro(Options opt) {
  Stats stats;
  std::vector<asyncio::Coro<void>> clients;
  for (int c = 0; c < opt.connections; ++c) clients.push_back(one_connection(&opt, c, &stats));
  const auto start = std::chrono::steady_clock::now();
  (void)co_await asyncio::gather(std::move(clients));
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double mb = static_cast<double>(stats.bytes) / 1e6;
  std::printf("%d connections x %d messages x %zu bytes to %s:%d\n", opt.connections, opt.messages,
              opt.size, opt.host.c_str(), opt.port);
  std::printf("echoed and checked %.2f MB in %.3f s: %.2f MB/s, %.0f round trips/s\n", mb, elapsed,
              elapsed > 0 ? mb / elapsed : 0.0, elapsed > 0 ? stats.round_trips / elapsed : 0.0);
  std::printf("mismatched messages: %d, failed connections: %d\n", stats.mismatches, stats.errors);
  for (const std::string& r : stats.reports) std::printf("  %s\n", r.c_str());
  const bool ok = stats.mismatches == 0 && stats.errors == 0 &&
                  stats.round_trips == opt.connections * opt.messages;
  std::printf("%s\n", ok ? "OK" : "FAILED");
  co_return ok ? 0 : 1;
}

/// An echo_server started by --spawn-server, stopped (SIGTERM) when this goes out of scope.
class SpawnedServer {
 public:
  SpawnedServer() = default;
  SpawnedServer(const SpawnedServer&) = delete;
  SpawnedServer& operator=(const SpawnedServer&) = delete;
  ~SpawnedServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (out_ >= 0) ::close(out_);
  }

  /// Starts `path` on port 0 and returns the port it printed (0 on failure).
  int start(const std::string& path, const Options& opt) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return 0;
    out_ = fds[0];
    std::vector<std::string> args = {path, "--host", opt.host, "--port", "0"};
    if (!opt.backend.empty()) {
      args.emplace_back("--backend");
      args.push_back(opt.backend);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // The child: dies with this process (even if it crashes), prints into the pipe. Only
      // async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(fds[1], STDOUT_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    if (pid_ < 0) {
      pid_ = 0;
      std::fprintf(stderr, "echo_client: cannot start %s: %s\n", path.c_str(),
                   std::strerror(errno));
      return 0;
    }
    // The first line, "listening on HOST:PORT", within 20 s.
    std::string line;
    for (int tries = 0; tries < 200 && line.find('\n') == std::string::npos; ++tries) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) break;  // the server died
      line.append(buf, static_cast<std::size_t>(n));
    }
    const std::size_t colon = line.rfind(':');
    if (line.rfind("listening on ", 0) != 0 || colon == std::string::npos) {
      std::fprintf(stderr, "echo_client: %s did not say where it listens\n", path.c_str());
      return 0;
    }
    std::printf("started %s: %s", path.c_str(), line.c_str());
    return std::atoi(line.c_str() + colon + 1);
  }

 private:
  pid_t pid_ = 0;
  int out_ = -1;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  asyncio::RunOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--host" && has_value) {
      opt.host = argv[++i];
    } else if (arg == "--port" && has_value) {
      opt.port = std::atoi(argv[++i]);
    } else if (arg == "--connections" && has_value) {
      opt.connections = std::atoi(argv[++i]);
    } else if (arg == "--messages" && has_value) {
      opt.messages = std::atoi(argv[++i]);
    } else if (arg == "--size" && has_value) {
      opt.size = static_cast<std::size_t>(std::strtoull(argv[++i], nullptr, 10));
    } else if (arg == "--backend" && has_value &&
               (std::strcmp(argv[i + 1], "epoll") == 0 ||
                std::strcmp(argv[i + 1], "io_uring") == 0)) {
      opt.backend = argv[++i];
      options.backend =
          opt.backend == "epoll" ? asyncio::Backend::epoll : asyncio::Backend::io_uring;
    } else if (arg == "--spawn-server" && has_value) {
      opt.spawn_server = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--host HOST] [--port PORT] [--connections N] [--messages M] "
                   "[--size BYTES] [--backend epoll|io_uring] [--spawn-server PATH]\n",
                   argv[0]);
      return 2;
    }
  }
  if (opt.connections < 1 || opt.messages < 0 || opt.size == 0 || opt.port < 0 ||
      opt.port > 65535) {
    std::fprintf(stderr, "echo_client: bad --connections, --messages, --size or --port\n");
    return 2;
  }
  SpawnedServer server;
  if (!opt.spawn_server.empty()) {
    opt.port = server.start(opt.spawn_server, opt);
    if (opt.port == 0) return 1;
  }
  try {
    return asyncio::run(main_coro(opt), options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_client: %s\n", e.what());
    return 1;
  }
}
