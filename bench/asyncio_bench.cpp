// asyncio_bench: asyncio-cpp's column in the shared anchor benchmarks
// (../shared/bench/README.md, "The system contract"). One thread runs the loop.
//
//   asyncio_bench spawn N BATCH    N tasks returning i, awaited BATCH at a time
//   asyncio_bench sleepers N MS    N concurrent tasks each sleeping MS ms, then returning 1
//   asyncio_bench chain N          N sequential awaits of a coroutine returning 1
//   asyncio_bench echo-server PORT  listen on 127.0.0.1:PORT, write back every byte read
//   asyncio_bench http-server PORT  listen on 127.0.0.1:PORT, answer each request head with a
//                                   fixed 13-byte "Hello, World!" (HTTP/1.1 keep-alive)
//   asyncio_bench echo-protocol-server PORT  echo-server one layer down (not in the contract):
//                                   create_server and a Protocol whose data_received writes the
//                                   bytes back, no task and no streams, to tell the costs apart
//
// The compute workloads print one JSON line: {"wall_s": ..., "check": ...}; the time covers the
// workload only. The servers print {"ready": true, "port": PORT} once listening, then nothing,
// and run until SIGTERM (its default action ends them). They are written with the streams API
// as a user writes them (start_server, a task per connection: read, write, drain), on the
// engine that Backend::automatic picks, so ASYNCIO_BACKEND=epoll|io_uring selects it.
// echo-protocol-server answers the same load, and is the figure of the layers below streams.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <asyncio.hpp>

namespace {

using Clock = std::chrono::steady_clock;

asyncio::Coro<long> identity(long i) {
  co_return i;
}
asyncio::Coro<long> one() {
  co_return 1;
}
asyncio::Coro<long> sleeper(double seconds) {
  co_await asyncio::sleep(seconds);
  co_return 1;
}

asyncio::Coro<long> spawn(long n, long batch) {
  long sum = 0;
  std::vector<asyncio::Task<long>> tasks;
  tasks.reserve(static_cast<std::size_t>(batch));
  for (long base = 0; base < n; base += batch) {
    const long end = std::min(n, base + batch);
    for (long i = base; i < end; ++i) tasks.push_back(asyncio::create_task(identity(i)));
    for (auto& t : tasks) sum += co_await t;
    tasks.clear();
  }
  co_return sum;
}

asyncio::Coro<long> sleepers(long n, double seconds) {
  std::vector<asyncio::Task<long>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) tasks.push_back(asyncio::create_task(sleeper(seconds)));
  long sum = 0;
  for (auto& t : tasks) sum += co_await t;
  co_return sum;
}

asyncio::Coro<long> chain(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await one();
  co_return sum;
}

/// Times `work` inside the loop (start-up excluded) and prints the contract's JSON line.
int measure(asyncio::Coro<long> (*make)(long, long), long a, long b) {
  struct Result {
    double wall;
    long check;
  };
  auto timed = [](asyncio::Coro<long> (*mk)(long, long), long x, long y) -> asyncio::Coro<Result> {
    const auto t0 = Clock::now();
    const long check = co_await mk(x, y);
    co_return Result{std::chrono::duration<double>(Clock::now() - t0).count(), check};
  };
  const Result r = asyncio::run(timed(make, a, b));
  std::printf("{\"wall_s\": %.6f, \"check\": %ld}\n", r.wall, r.check);
  return 0;
}

// ---- Servers ----------------------------------------------------------------------------------

constexpr std::size_t kChunk = 65536;   // one read
constexpr std::size_t kMaxHead = 8192;  // a request head that grows past this is refused
constexpr std::string_view kHttpResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// One echo connection, as a user writes it with streams: read what is there, write it back,
/// drain; until end of file or an error.
asyncio::Coro<void> echo_connection(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  try {
    for (;;) {
      const std::string data = co_await reader.read(kChunk);
      if (data.empty()) break;
      writer.write(data);
      co_await writer.drain();
    }
  } catch (const asyncio::OSError&) {
    // The client reset the connection: this connection is over, the server goes on.
  }
  writer.close();
}

/// One HTTP/1.1 keep-alive connection: a fixed response per complete request head (a head ends
/// in "\r\n\r\n"); pipelined heads get their responses in one write. A read that holds whole
/// heads (the usual case) is scanned where it is; only a head cut off by the end of a read is
/// kept, and completed by the next.
asyncio::Coro<void> http_connection(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  std::string carry;  // the start of a request head that the last read cut off
  std::string out;
  try {
    for (;;) {
      const std::string data = co_await reader.read(kChunk);
      if (data.empty()) break;
      std::string_view in = data;
      std::size_t at = 0;
      if (!carry.empty()) {
        // A head's end may straddle two reads: look from 3 bytes before the new ones.
        at = carry.size() >= 3 ? carry.size() - 3 : 0;
        carry += data;
        in = carry;
      }
      std::size_t heads = 0;
      std::size_t start = 0;
      for (; (at = in.find("\r\n\r\n", at)) != std::string_view::npos; at += 4) {
        ++heads;
        start = at + 4;
      }
      if (in.data() == carry.data()) {
        carry.erase(0, start);
      } else if (start < in.size()) {
        carry.assign(in.substr(start));
      }
      if (carry.size() > kMaxHead) break;  // head too large
      if (heads == 0) continue;
      if (heads == 1) {
        writer.write(kHttpResponse);
      } else {
        out.clear();
        for (std::size_t i = 0; i < heads; ++i) out += kHttpResponse;
        writer.write(out);
      }
      co_await writer.drain();
    }
  } catch (const asyncio::OSError&) {
  }
  writer.close();
}

/// echo-protocol-server's protocol: each chunk received is written back at once.
class EchoProtocol final : public asyncio::Protocol {
 public:
  void connection_made(asyncio::Transport& transport) override { transport_ = &transport; }
  void data_received(std::string_view data) override { transport_->write(data); }

 private:
  asyncio::Transport* transport_ = nullptr;  // valid until connection_lost()
};

enum class ServerKind { echo, http, echo_protocol };

/// Listens on 127.0.0.1:`port`: start_server with a task per connection, or create_server
/// with EchoProtocol.
asyncio::Coro<asyncio::Server> listen(int port, ServerKind kind) {
  const auto p = static_cast<std::uint16_t>(port);
  if (kind == ServerKind::echo_protocol) {
    co_return co_await asyncio::create_server([] { return std::make_shared<EchoProtocol>(); },
                                              "127.0.0.1", p, {.backlog = 1024});
  }
  co_return co_await asyncio::start_server(
      kind == ServerKind::http ? http_connection : echo_connection, "127.0.0.1", p,
      {.backlog = 1024});
}

/// Serves until a signal ends the process.
asyncio::Coro<void> serve_main(int port, ServerKind kind) {
  asyncio::Server server = co_await listen(port, kind);
  std::printf("{\"ready\": true, \"port\": %d}\n", server.port());
  std::fflush(stdout);
  co_await server.serve_forever();
}

/// Listens, says so on stdout, and serves until a signal ends the process.
int serve(int port, ServerKind kind) {
  try {
    asyncio::run(serve_main(port, kind));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asyncio_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

long arg(int argc, char** argv, int i, long fallback) {
  return i < argc ? std::strtol(argv[i], nullptr, 10) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string workload = argc > 1 ? argv[1] : "";
  if (workload == "spawn") {
    return measure([](long n, long batch) { return spawn(n, batch); }, arg(argc, argv, 2, 1000000),
                   arg(argc, argv, 3, 1000));
  }
  if (workload == "sleepers") {
    return measure([](long n, long ms) { return sleepers(n, static_cast<double>(ms) / 1000.0); },
                   arg(argc, argv, 2, 100000), arg(argc, argv, 3, 100));
  }
  if (workload == "chain") {
    return measure([](long n, long /*unused*/) { return chain(n); }, arg(argc, argv, 2, 10000000),
                   0);
  }
  if ((workload == "echo-server" || workload == "http-server" ||
       workload == "echo-protocol-server") &&
      argc > 2) {
    const ServerKind kind = workload == "http-server"   ? ServerKind::http
                            : workload == "echo-server" ? ServerKind::echo
                                                        : ServerKind::echo_protocol;
    return serve(static_cast<int>(arg(argc, argv, 2, 0)), kind);
  }
  std::fprintf(stderr, "asyncio_bench: workload '%s' is not implemented\n", workload.c_str());
  return 3;
}
