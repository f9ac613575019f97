// multicore_echo: an echo server on several cores - one event loop per thread, each with its own
// listening socket on the same port (SO_REUSEPORT), the kernel spreading the connections.
//
//   multicore_echo [--host HOST] [--port PORT] [--loops N] [--backend epoll|io_uring]
//   multicore_echo --self-test [--loops N] [--backend epoll|io_uring]
//
// An asyncio loop runs on one thread; to use N cores, run N loops. Each thread here calls
// asyncio::run() with its own start_server(echo, host, port, {.reuse_port = true}); the first
// one picks the port when PORT is 0 (the default is 8888) and the others bind to it. Nothing is
// shared between the loops but the port: a connection lives on the loop that accepted it.
// Stopping: each loop's main coroutine waits for an asyncio::Event; the main thread sets it with
// loop.call_soon_threadsafe() (the one EventLoop member other threads may call), then joins.
// Runs until Ctrl-C and then prints how many connections each loop served.
//
// --self-test starts N loops (default 2) on port 0, connects 20 clients from a loop in the main
// thread, checks every echo, stops the loops, and reports how many connections each one served.
// Exit 1 on an error (an imbalance is not one: the kernel hashes each connection to a loop).
//
// Python: the same with a thread per loop, each running
//     asyncio.run(main()) where main() does
//         server = await asyncio.start_server(handle_echo, host, port, reuse_port=True)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <asyncio.hpp>

namespace {

using namespace std::chrono_literals;

/// One connection: echo every chunk until end of file.
asyncio::Coro<void> echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  try {
    for (;;) {  // until the client's end of file
      std::string data = co_await reader.read(65536);
      if (data.empty()) break;
      writer.write(data);
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // Reset by the client.
  }
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const std::system_error&) {
  }
}

/// The connection callback of one loop, counting its connections (built here, not inside a
/// coroutine).
asyncio::ClientConnected counting_echo(int* served) {
  return [served](asyncio::StreamReader r, asyncio::StreamWriter w) {
    ++*served;
    return echo(std::move(r), std::move(w));
  };
}

/// One event loop on its own thread, serving `host`:`port` with reuse_port until stop().
class ServerThread {
 public:
  ServerThread(std::string host, std::uint16_t port, asyncio::RunOptions options)
      : host_(std::move(host)), port_(port), options_(options) {}
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;
  ~ServerThread() { stop(); }

  /// Starts the thread and waits until it listens; returns the port (rethrows its failure).
  std::uint16_t start() {
    std::future<std::uint16_t> listening = started_.get_future();
    thread_ = std::thread([this] { run(); });
    return listening.get();
  }

  /// Asks the loop to close its server and waits for the thread to end. Idempotent.
  void stop() {
    {
      const std::lock_guard<std::mutex> lock(mu_);
      if (loop_ != nullptr && !finished_) {
        asyncio::Event* stop = stop_;
        loop_->call_soon_threadsafe([stop] { stop->set(); });
      }
    }
    if (thread_.joinable()) thread_.join();
  }

  /// Connections accepted (read it after stop()).
  [[nodiscard]] int served() const noexcept { return served_; }

 private:
  void run() {
    try {
      asyncio::run(serve(), options_);
    } catch (...) {
      if (!published_) {
        started_.set_exception(std::current_exception());  // start() rethrows it
      } else {
        std::fprintf(stderr, "multicore_echo: a server loop failed\n");
      }
    }
  }

  asyncio::Coro<void> serve() {
    asyncio::Event stop;
    asyncio::Server server =
        co_await asyncio::start_server(counting_echo(&served_), host_, port_, {.reuse_port = true});
    {
      const std::lock_guard<std::mutex> lock(mu_);
      loop_ = &asyncio::get_running_loop();
      stop_ = &stop;
    }
    published_ = true;
    started_.set_value(server.port());
    co_await stop.wait();
    server.close();
    server.close_clients();
    try {
      co_await asyncio::wait_for(server.wait_closed(), 2s);
    } catch (const asyncio::TimeoutError&) {
    }
    const std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
  }

  std::string host_;
  std::uint16_t port_;
  asyncio::RunOptions options_;
  std::thread thread_;
  std::promise<std::uint16_t> started_;
  bool published_ = false;  // this thread's own: started_ was set
  int served_ = 0;          // this thread's own until it is joined
  std::mutex mu_;
  asyncio::EventLoop* loop_ = nullptr;  // guarded by mu_
  asyncio::Event* stop_ = nullptr;      // guarded by mu_
  bool finished_ = false;               // guarded by mu_: the loop may be gone
};

asyncio::Coro<void> wait_for_ctrl_c() {
  asyncio::Event never;
  co_await never.wait();  // cancelled by Ctrl-C: run() throws KeyboardInterrupt
}

// ---- the self-test ---------------------------------------------------------------------------

constexpr int kClients = 20;
constexpr int kMessages = 5;

/// A client: kMessages lines, each checked when it comes back. Returns the number of errors.
asyncio::Coro<int> client(std::uint16_t port, int id) {
  try {
    auto connection = co_await asyncio::open_connection("127.0.0.1", port);
    asyncio::StreamReader reader = connection.first;
    asyncio::StreamWriter writer = connection.second;
    int errors = 0;
    for (int m = 0; m < kMessages; ++m) {
      std::string line = "client " + std::to_string(id) + " message " + std::to_string(m) + ' ';
      line.resize(100 + 37 * static_cast<std::size_t>(id), static_cast<char>('a' + id % 26));
      line += '\n';
      writer.write(line);
      const std::string back = co_await reader.readexactly(line.size());
      co_await writer.drain();
      if (back != line) ++errors;
    }
    writer.close();
    co_await writer.wait_closed();
    co_return errors;
  } catch (const std::exception& e) {
    std::printf("client %d failed: %s\n", id, e.what());
    co_return 1;
  }
}

asyncio::Coro<int> self_test(std::uint16_t port) {
  std::vector<asyncio::Coro<int>> clients;
  for (int id = 0; id < kClients; ++id) clients.push_back(client(port, id));
  const std::vector<int> errors = co_await asyncio::gather(std::move(clients));
  int total = 0;
  for (int e : errors) total += e;
  std::printf("%d clients x %d messages: %d errors\n", kClients, kMessages, total);
  co_return total;
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  std::string host = "127.0.0.1";
  int port = 8888;
  int loops = 2;
  bool test = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--host" && has_value) {
      host = argv[++i];
    } else if (arg == "--port" && has_value) {
      port = std::atoi(argv[++i]);
    } else if (arg == "--loops" && has_value) {
      loops = std::atoi(argv[++i]);
    } else if (arg == "--backend" && has_value &&
               (std::strcmp(argv[i + 1], "epoll") == 0 ||
                std::strcmp(argv[i + 1], "io_uring") == 0)) {
      options.backend = std::strcmp(argv[++i], "epoll") == 0 ? asyncio::Backend::epoll
                                                             : asyncio::Backend::io_uring;
    } else if (arg == "--self-test") {
      test = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--host HOST] [--port PORT] [--loops N] [--backend "
                   "epoll|io_uring] [--self-test]\n",
                   argv[0]);
      return 2;
    }
  }
  if (port < 0 || port > 65535 || loops < 1 || loops > 256) {
    std::fprintf(stderr, "multicore_echo: bad --port or --loops\n");
    return 2;
  }
  if (test) {
    host = "127.0.0.1";
    port = 0;
  }
  try {
    // The first loop picks the port (when it is 0); the others bind to the same one.
    std::vector<std::unique_ptr<ServerThread>> servers;
    auto where = static_cast<std::uint16_t>(port);
    for (int i = 0; i < loops; ++i) {
      servers.push_back(std::make_unique<ServerThread>(host, where, options));
      where = servers.back()->start();
    }
    std::printf("listening on %s:%u with %d loops, a thread each\n", host.c_str(),
                static_cast<unsigned>(where), loops);
    std::fflush(stdout);
    int errors = 0;
    if (test) {
      errors = asyncio::run(self_test(where), options);
    } else {
      try {
        asyncio::run(wait_for_ctrl_c(), options);
      } catch (const asyncio::KeyboardInterrupt&) {
      }
    }
    int total = 0;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      servers[i]->stop();
      total += servers[i]->served();
      std::printf("loop %zu served %d connections\n", i, servers[i]->served());
    }
    if (test) {
      if (total != kClients) ++errors;
      std::printf("%d connections in all (expected %d); all loops stopped\n", total, kClients);
      std::printf("%s\n", errors == 0 ? "self-test passed" : "self-test FAILED");
    }
    return errors == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "multicore_echo: %s\n", e.what());
    return 1;
  }
}
