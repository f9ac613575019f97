// Real clients and servers we did not write, talking to our streams over loopback - run on BOTH
// I/O engines (every TEST_P runs once with Backend::epoll and once with Backend::io_uring):
//   - Python's own asyncio (python3) as a client of our echo server, and as an echo server for
//     our client, with 1 MiB messages checked byte for byte on the receiving side;
//   - curl fetching twice over one HTTP/1.1 keep-alive connection from a small server written
//     here with start_server();
//   - wrk loading that server for one second, with no socket error.
//
// Our side runs in the test's loop; the other side is a child process run through
// asyncio::to_thread (popen on an executor thread), so the loop keeps serving while the child
// runs. A tool that is missing skips its test with a message (scripts/install-deps installs
// python3, curl and wrk). Every test runs under a time-out (kBound seconds) and checks that it
// leaked no fd; the children get time-outs of their own.
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "command_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"
#include "unix/loop_io.hpp"

namespace {

using asyncio_test::engine_name;
using asyncio_test::io_uring_refused;
using asyncio_test::param_name;

using asyncio::Backend;
using asyncio::ClientConnected;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::RunOptions;
using asyncio::Server;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using asyncio::Task;
using asyncio_test::open_fds;
using asyncio_test::what_of;

/// Seconds of (loop) time after which a test's coroutine is cancelled (TimeoutError).
constexpr double kBound = 120.0;

/// The size of each message exchanged with Python.
constexpr std::size_t kMessage = std::size_t{1} << 20;
/// How many messages each way.
constexpr int kMessages = 4;

// ---- Child processes ---------------------------------------------------------------------------

using asyncio_test::Child;
using asyncio_test::have;
using asyncio_test::line_in_thread;
using asyncio_test::Outcome;
using asyncio_test::run_in_thread;
using asyncio_test::sh_quote;
using asyncio_test::wait_in_thread;

// ---- Our servers -------------------------------------------------------------------------------

/// Echoes every byte until EOF, then closes.
constexpr auto& echo = asyncio_test::stream_echo;

/// What the HTTP server saw.
struct HttpStats {
  int connections = 0;
  int requests = 0;
  int bad_requests = 0;
  int handler_errors = 0;
};

Coro<void> http_impl(StreamReader r, StreamWriter w, std::shared_ptr<HttpStats> stats) {
  ++stats->connections;
  try {
    for (;;) {
      std::string head;
      try {
        head = co_await r.readuntil("\r\n\r\n");
      } catch (const asyncio::IncompleteReadError&) {
        break;  // the client closed the connection (between requests: normal)
      }
      ++stats->requests;
      if (!head.starts_with("GET ")) ++stats->bad_requests;
      w.write("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!");
      co_await w.drain();
    }
  } catch (const asyncio::ConnectionError&) {
    // A load generator may reset its connections at the end of its run.
  } catch (const std::exception&) {
    ++stats->handler_errors;
  }
  w.close();
}
/// A tiny HTTP/1.1 keep-alive server: every request (a head, no body) gets "Hello, World!".
ClientConnected http_hello(std::shared_ptr<HttpStats> stats) {
  return [stats](StreamReader r, StreamWriter w) {
    return http_impl(std::move(r), std::move(w), stats);
  };
}

// ---- Data --------------------------------------------------------------------------------------

std::string random_bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 gen(seed);
  for (char& c : s) c = static_cast<char>(gen() & 0xFF);
  return s;
}

// ---- The fixture -------------------------------------------------------------------------------

class RealClients : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
  }

  /// asyncio::run(main) on the engine under test, bounded by kBound seconds; checks that no fd
  /// was leaked.
  void run(Coro<void> main) {
    const std::size_t before = open_fds();
    asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                 RunOptions{.backend = GetParam()});
    EXPECT_EQ(open_fds(), before) << "fds leaked";
  }
};

#define SKIP_WITHOUT(tool)                                                            \
  if (!have(tool))                                                                    \
  GTEST_SKIP() << "`" tool                                                            \
                  "` is not installed (scripts/install-deps installs it): this test " \
                  "runs it as a real client"

Coro<void> close_server(Server& server) {
  server.close();
  server.close_clients();
  co_await server.wait_closed();
}

// =================================================================================================
// Python's asyncio
// =================================================================================================

// Python's asyncio client: sends kMessages random 1 MiB messages while reading the echoes
// concurrently, checks every byte, half-closes and expects EOF. Exit code 0 means OK.
constexpr const char* kPythonClient = R"PY(
import asyncio, random, sys

async def main(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random(7)
    msgs = [rng.randbytes(1 << 20) for _ in range(4)]

    async def send():
        for m in msgs:
            writer.write(m)
            await writer.drain()
        writer.write_eof()

    async def receive():
        for i, m in enumerate(msgs):
            got = await reader.readexactly(len(m))
            if got != m:
                first = next(k for k in range(len(m)) if got[k] != m[k])
                print(f"message {i}: first difference at byte {first}", file=sys.stderr)
                return False
        return await reader.read() == b""

    _, ok = await asyncio.gather(send(), receive())
    writer.close()
    await writer.wait_closed()
    print("OK" if ok else "MISMATCH")
    return ok

ok = asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 60))
sys.exit(0 if ok else 1)
)PY";

Coro<void> python_client() {
  Server server = co_await asyncio::start_server(echo, "127.0.0.1", 0);
  const std::string command =
      "python3 -c " + sh_quote(kPythonClient) + " " + std::to_string(server.port());
  const Outcome o = co_await run_in_thread(command);
  EXPECT_EQ(o.exit_code, 0) << "stdout: " << o.out << "\nstderr: " << o.err;
  EXPECT_EQ(o.out, "OK\n") << o.err;
  co_await close_server(server);
}

TEST_P(RealClients, PythonAsyncioClientGetsEveryByteFromOurEchoServer) {
  SKIP_WITHOUT("python3");
  run(python_client());
}

// Python's asyncio echo server: prints its port, serves one connection until EOF, then exits.
constexpr const char* kPythonServer = R"PY(
import asyncio, sys

async def main():
    done = asyncio.Event()

    async def handle(reader, writer):
        total = 0
        while True:
            data = await reader.read(65536)
            if not data:
                break
            total += len(data)
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        print(total, flush=True)
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.wait_for(done.wait(), 60)

asyncio.run(main())
)PY";

/// Sends the messages, draining after each.
Coro<void> send_messages(StreamWriter w, std::shared_ptr<const std::vector<std::string>> msgs) {
  for (const std::string& m : *msgs) {
    w.write(m);
    co_await w.drain();
  }
  w.write_eof();
}

/// Reads the echoes back: the index of the first message that differs, or -1.
Coro<int> check_echoes(StreamReader r, std::shared_ptr<const std::vector<std::string>> msgs) {
  for (std::size_t i = 0; i < msgs->size(); ++i) {
    const std::string got = co_await r.readexactly((*msgs)[i].size());
    if (got != (*msgs)[i]) co_return static_cast<int>(i);
  }
  co_return (co_await r.read()).empty() ? -1 : static_cast<int>(msgs->size());
}

std::shared_ptr<const std::vector<std::string>> make_messages() {
  auto msgs = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < kMessages; ++i) {
    msgs->push_back(random_bytes(kMessage, static_cast<unsigned>(i + 1)));
  }
  return msgs;
}

Coro<void> python_server() {
  Child child("python3 -c " + sh_quote(kPythonServer));
  EXPECT_TRUE(child.started());
  if (!child.started()) co_return;
  const std::string port_line = co_await line_in_thread(&child);
  const int port = std::atoi(port_line.c_str());
  EXPECT_GT(port, 0) << "python3 printed [" << port_line << "] instead of its port";
  if (port <= 0) co_return;
  auto [reader, writer] =
      co_await asyncio::open_connection("127.0.0.1", static_cast<std::uint16_t>(port));
  const auto msgs = make_messages();
  Task<void> sending = create_task(send_messages(writer, msgs));
  const int bad = co_await check_echoes(reader, msgs);
  co_await sending;
  EXPECT_EQ(bad, -1) << "message " << bad << " came back different (or data after the echoes)";
  writer.close();
  co_await writer.wait_closed();
  const Outcome o = co_await wait_in_thread(&child);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, std::to_string(kMessage * kMessages) + "\n")
      << "the Python server did not count every byte";
}

TEST_P(RealClients, OurClientGetsEveryByteFromAPythonAsyncioEchoServer) {
  SKIP_WITHOUT("python3");
  run(python_server());
}

// =================================================================================================
// curl and wrk against a keep-alive HTTP server
// =================================================================================================

Coro<void> curl_keep_alive() {
  auto stats = std::make_shared<HttpStats>();
  Server server = co_await asyncio::start_server(http_hello(stats), "127.0.0.1", 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
  const Outcome o = co_await run_in_thread("curl -sv --max-time 20 " + url + " " + url);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "Hello, World!Hello, World!") << o.err;
  const bool reused = o.err.find("Re-using existing connection") != std::string::npos ||
                      o.err.find("Reusing existing connection") != std::string::npos;
  EXPECT_TRUE(reused || stats->connections == 1) << o.err;
  EXPECT_EQ(stats->connections, 1) << "curl did not keep its connection alive";
  EXPECT_EQ(stats->requests, 2);
  EXPECT_EQ(stats->bad_requests, 0);
  EXPECT_EQ(stats->handler_errors, 0);
  co_await close_server(server);
}

TEST_P(RealClients, CurlFetchesTwiceOverOneKeepAliveConnection) {
  SKIP_WITHOUT("curl");
  run(curl_keep_alive());
}

/// wrk's "Requests/sec:" figure (nullopt when absent).
std::optional<double> requests_per_second(const std::string& out) {
  std::smatch m;
  static const std::regex re(R"(Requests/sec:\s+([0-9.]+))");
  if (!std::regex_search(out, m, re)) return std::nullopt;
  return std::stod(m[1].str());
}

/// The total of wrk's "Socket errors: connect A, read B, write C, timeout D" (0 when absent).
long socket_errors(const std::string& out) {
  std::smatch m;
  static const std::regex re(
      R"(Socket errors:\s*connect\s+(\d+),\s*read\s+(\d+),\s*write\s+(\d+),\s*timeout\s+(\d+))");
  if (!std::regex_search(out, m, re)) {
    return out.find("Socket errors") == std::string::npos ? 0 : -1;  // -1: unparsable
  }
  long total = 0;
  for (std::size_t i = 1; i <= 4; ++i) total += std::stol(m[i].str());
  return total;
}

Coro<void> wrk_load() {
  auto stats = std::make_shared<HttpStats>();
  Server server = co_await asyncio::start_server(http_hello(stats), "127.0.0.1", 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
  const Outcome o = co_await run_in_thread("wrk -t1 -c10 -d1s --timeout 10s " + url);
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  const std::optional<double> rps = requests_per_second(o.out);
  EXPECT_TRUE(rps.has_value()) << o.out;
  EXPECT_GT(rps.value_or(0.0), 0.0) << o.out;
  EXPECT_EQ(socket_errors(o.out), 0) << o.out;
  EXPECT_EQ(o.out.find("Non-2xx"), std::string::npos) << o.out;
  EXPECT_GE(stats->connections, 10);
  EXPECT_GT(stats->requests, 0);
  EXPECT_EQ(stats->bad_requests, 0);
  EXPECT_EQ(stats->handler_errors, 0);
  co_await close_server(server);
}

TEST_P(RealClients, WrkRunsOneSecondWithoutSocketErrors) {
  SKIP_WITHOUT("wrk");
  run(wrk_load());
}

INSTANTIATE_TEST_SUITE_P(Engines, RealClients, ::testing::Values(Backend::epoll, Backend::io_uring),
                         param_name);

}  // namespace
