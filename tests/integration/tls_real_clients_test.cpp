// TLS with real peers we did not write, over loopback, on BOTH I/O engines (every TEST_P runs
// once with Backend::epoll and once with Backend::io_uring):
//   - `openssl s_client` against our TLS echo server (start_server with `.ssl`), TLS 1.3 and 1.2,
//     verifying our certificate against the test CA and the name "localhost";
//   - our TLS client (open_connection with `.ssl`) against `openssl s_server -rev`, verifying its
//     certificate against the test CA, and failing with SSLCertVerificationError against one
//     issued for another name;
//   - Python's asyncio with ssl as a client of our TLS echo server and as a TLS echo server for
//     our client, 1 MiB messages checked byte for byte;
//   - curl fetching twice over one HTTPS keep-alive connection from a small server written here.
//
// Certificates are made at test time (tls_test.hpp). Our side runs in the test's loop; the other
// side is a child process run through asyncio::to_thread (popen on an executor thread), so the
// loop keeps serving while the child runs. A missing tool skips its test. Every test runs under
// a time-out (kBound seconds) and checks that it leaked no fd; the children get time-outs of
// their own (`timeout`, or their own wait_for).
#include <any>
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
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "command_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"
#include "tls_test.hpp"

namespace {

namespace ssl = asyncio::ssl;
using asyncio::Backend;
using asyncio::ClientConnected;
using asyncio::ConnectionOptions;
using asyncio::Coro;
using asyncio::create_task;
using asyncio::RunOptions;
using asyncio::Server;
using asyncio::ServerOptions;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using asyncio::Task;
using asyncio_test::certs;
using asyncio_test::client_context;
using asyncio_test::io_uring_refused;
using asyncio_test::open_fds;
using asyncio_test::param_name;
using asyncio_test::server_context;

/// Seconds of (loop) time after which a test's coroutine is cancelled (TimeoutError).
constexpr double kBound = 120.0;
/// The size of each message exchanged with Python, and how many each way.
constexpr std::size_t kMessage = std::size_t{1} << 20;
constexpr int kMessages = 2;

// ---- Child processes ---------------------------------------------------------------------------

using asyncio_test::Child;
using asyncio_test::have;
using asyncio_test::line_in_thread;
using asyncio_test::Outcome;
using asyncio_test::run_in_thread;
using asyncio_test::sh_quote;
using asyncio_test::wait_in_thread;

// ---- Our servers -------------------------------------------------------------------------------

/// Echoes every byte until EOF, counting them, then closes.
Coro<void> echo_impl(StreamReader r, StreamWriter w, std::shared_ptr<std::size_t> echoed) {
  for (;;) {
    std::string data = co_await r.read(1 << 16);
    if (data.empty()) break;
    w.write(data);
    *echoed += data.size();
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}
ClientConnected echo(std::shared_ptr<std::size_t> echoed) {
  return [echoed](StreamReader r, StreamWriter w) {
    return echo_impl(std::move(r), std::move(w), echoed);
  };
}

/// Echoes line by line; closes after the line "bye\n" (s_client -quiet waits for the server to
/// close).
Coro<void> line_echo(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
    if (line == "bye\n") break;
  }
  w.close();
  co_await w.wait_closed();
}

/// What the HTTPS server saw.
struct HttpStats {
  int connections = 0;
  int requests = 0;
  int bad_requests = 0;
  int handler_errors = 0;
  std::string protocol;  // the first connection's TLS version
};

Coro<void> https_impl(StreamReader r, StreamWriter w, std::shared_ptr<HttpStats> stats) {
  ++stats->connections;
  const std::any c = w.get_extra_info("cipher");
  if (c.has_value() && stats->protocol.empty()) {
    stats->protocol = std::any_cast<ssl::Cipher>(c).protocol;
  }
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
  } catch (const std::exception&) {
    ++stats->handler_errors;
  }
  w.close();
}
/// A tiny HTTP/1.1 keep-alive server: every request (a head, no body) gets "Hello, World!".
ClientConnected https_hello(std::shared_ptr<HttpStats> stats) {
  return [stats](StreamReader r, StreamWriter w) {
    return https_impl(std::move(r), std::move(w), stats);
  };
}

Coro<void> close_server(Server& server) {
  server.close();
  server.close_clients();
  co_await asyncio::wait_for(server.wait_closed(), 30.0);
}

// ---- Data --------------------------------------------------------------------------------------

std::string random_bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 gen(seed);
  for (char& c : s) c = static_cast<char>(gen() & 0xFF);
  return s;
}

std::shared_ptr<const std::vector<std::string>> make_messages() {
  auto msgs = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < kMessages; ++i) {
    msgs->push_back(random_bytes(kMessage, static_cast<unsigned>(i + 1)));
  }
  return msgs;
}

/// Sends the messages, draining after each (TLS has no write_eof: the reader counts instead).
Coro<void> send_messages(StreamWriter w, std::shared_ptr<const std::vector<std::string>> msgs) {
  for (const std::string& m : *msgs) {
    w.write(m);
    co_await w.drain();
  }
}

/// Reads the echoes back: the index of the first message that differs, or -1.
Coro<int> check_echoes(StreamReader r, std::shared_ptr<const std::vector<std::string>> msgs) {
  for (std::size_t i = 0; i < msgs->size(); ++i) {
    const std::string got = co_await r.readexactly((*msgs)[i].size());
    if (got != (*msgs)[i]) co_return static_cast<int>(i);
  }
  co_return -1;
}

// ---- The fixture -------------------------------------------------------------------------------

class TlsRealClients : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
    if (!asyncio_test::have_openssl_cli()) {
      GTEST_SKIP() << "no openssl command to make certificates";
    }
    (void)certs();  // made before the fds are counted
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
                  "runs it as a real peer"

// =================================================================================================
// openssl s_client / s_server
// =================================================================================================

/// s_client (`version`: "-tls1_3" or "-tls1_2") sends three lines to our line-echo server,
/// verifying its certificate against the test CA and the name localhost (-verify_return_error:
/// a failed verification ends it with an error), and prints what comes back (-quiet: only the
/// data; it runs until the server closes, after "bye").
Coro<void> s_client_body(std::string version) {
  const ssl::SSLContext sctx = server_context();
  Server server =
      co_await asyncio::start_server(line_echo, "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  const std::string command =
      "printf 'hello\\nover TLS\\nbye\\n' | timeout 30 openssl s_client -connect 127.0.0.1:" +
      std::to_string(server.port()) + " " + version + " -CAfile " + sh_quote(certs().ca_pem) +
      " -verify_return_error -verify_hostname localhost -servername localhost -quiet";
  const Outcome o = co_await run_in_thread(command);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hello\nover TLS\nbye\n") << o.err;
  EXPECT_NE(o.err.find("verify return:1"), std::string::npos) << o.err;
  co_await close_server(server);
}

TEST_P(TlsRealClients, OpensslSClientTls13GetsItsLinesBack) {
  run(s_client_body("-tls1_3"));
}

TEST_P(TlsRealClients, OpensslSClientTls12GetsItsLinesBack) {
  run(s_client_body("-tls1_2"));
}

/// Starts `openssl s_server -rev` (each line sent back reversed) on a free port of 127.0.0.1
/// with `cert`/`key`, for one connection; its port (0 when it did not start).
Coro<int> start_s_server(Child& child) {
  if (!child.started()) co_return 0;
  for (int i = 0; i < 20; ++i) {  // "Using default temp DH parameters", then "ACCEPT host:port"
    const std::string line = co_await asyncio::wait_for(line_in_thread(&child), 30.0);
    if (line.empty()) break;
    if (line.starts_with("ACCEPT ")) {
      co_return std::atoi(line.substr(line.rfind(':') + 1).c_str());
    }
  }
  co_return 0;
}

std::string s_server_command(const std::string& cert, const std::string& key) {
  return "timeout 60 openssl s_server -accept 127.0.0.1:0 -naccept 1 -rev -cert " + sh_quote(cert) +
         " -key " + sh_quote(key) + " 2>&1";
}

// Our client verifies s_server's certificate (the test CA, the name localhost), exchanges lines
// over TLS 1.3 and reads the peer's certificate.
Coro<void> s_server_body() {
  Child child(s_server_command(certs().server_pem, certs().server_key));
  const int port = co_await start_s_server(child);
  EXPECT_GT(port, 0) << "openssl s_server did not print its port";
  if (port <= 0) co_return;
  const ssl::SSLContext cctx = client_context();
  auto [r, w] = co_await asyncio::open_connection(
      "127.0.0.1", static_cast<std::uint16_t>(port),
      ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  const auto cipher = std::any_cast<ssl::Cipher>(w.get_extra_info("cipher"));
  EXPECT_EQ(cipher.protocol, "TLSv1.3");
  const auto cert = std::any_cast<ssl::Certificate>(w.get_extra_info("peercert"));
  bool cn = false;
  for (auto& [k, v] : cert.subject) cn = cn || (k == "commonName" && v == "localhost");
  EXPECT_TRUE(cn) << "the peer certificate is not the test server's";
  w.write("hello\n");
  EXPECT_EQ(co_await asyncio::wait_for(r.readline(), 30.0), "olleh\n");
  w.write("asyncio-cpp over TLS\n");
  EXPECT_EQ(co_await asyncio::wait_for(r.readline(), 30.0), "SLT revo ppc-oicnysa\n");
  w.close();
  co_await w.wait_closed();
  const Outcome o = co_await wait_in_thread(&child);  // -naccept 1: it ends after us
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_NE(o.out.find("CONNECTION ESTABLISHED"), std::string::npos) << o.out;
}

TEST_P(TlsRealClients, OurClientVerifiesOpensslSServerAndExchangesLines) {
  run(s_server_body());
}

// s_server presents a certificate for wrong.example: our client's handshake fails with
// SSLCertVerificationError (a host name mismatch), nothing leaks.
Coro<void> s_server_wrong_name_body() {
  Child child(s_server_command(certs().wrong_pem, certs().wrong_key));
  const int port = co_await start_s_server(child);
  EXPECT_GT(port, 0) << "openssl s_server did not print its port";
  if (port <= 0) co_return;
  const ssl::SSLContext cctx = client_context();
  std::string error;
  try {
    (void)co_await asyncio::open_connection(
        "127.0.0.1", static_cast<std::uint16_t>(port),
        ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
    error = "<connected>";
  } catch (const ssl::SSLCertVerificationError& e) {
    error = e.verify_message();
  } catch (const std::exception& e) {
    error = std::string("<other error: ") + e.what() + ">";
  }
  EXPECT_NE(error.find("Hostname mismatch"), std::string::npos) << error;
  (void)co_await wait_in_thread(&child);  // s_server ends with its one (failed) connection
}

TEST_P(TlsRealClients, OurClientRejectsOpensslSServerWithAnotherName) {
  run(s_server_wrong_name_body());
}

// =================================================================================================
// Python's asyncio with ssl
// =================================================================================================

// Python's asyncio TLS client: verifies our server (the test CA, server_hostname localhost),
// sends 2 random 1 MiB messages while reading the echoes concurrently, checks every byte. Prints
// the TLS version, then OK.
constexpr const char* kPythonClient = R"PY(
import asyncio, random, ssl, sys

async def main(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname="localhost")
    rng = random.Random(7)
    msgs = [rng.randbytes(1 << 20) for _ in range(2)]

    async def send():
        for m in msgs:
            writer.write(m)
            await writer.drain()

    async def receive():
        for i, m in enumerate(msgs):
            got = await reader.readexactly(len(m))
            if got != m:
                first = next(k for k in range(len(m)) if got[k] != m[k])
                print(f"message {i}: first difference at byte {first}", file=sys.stderr)
                return False
        return True

    _, ok = await asyncio.gather(send(), receive())
    print(writer.get_extra_info("ssl_object").version())
    writer.close()
    await writer.wait_closed()
    print("OK" if ok else "MISMATCH")
    return ok

ok = asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), sys.argv[2]), 60))
sys.exit(0 if ok else 1)
)PY";

Coro<void> python_client_body() {
  const ssl::SSLContext sctx = server_context();
  auto echoed = std::make_shared<std::size_t>(0);
  Server server =
      co_await asyncio::start_server(echo(echoed), "127.0.0.1", 0, ServerOptions{.ssl = sctx});
  const std::string command = "python3 -c " + sh_quote(kPythonClient) + " " +
                              std::to_string(server.port()) + " " + sh_quote(certs().ca_pem);
  const Outcome o = co_await run_in_thread(command);
  EXPECT_EQ(o.exit_code, 0) << "stdout: " << o.out << "\nstderr: " << o.err;
  EXPECT_EQ(o.out, "TLSv1.3\nOK\n") << o.err;
  co_await close_server(server);
  EXPECT_EQ(*echoed, kMessage * 2);
}

TEST_P(TlsRealClients, PythonAsyncioSslClientGetsEveryByteFromOurTlsEchoServer) {
  SKIP_WITHOUT("python3");
  run(python_client_body());
}

// Python's asyncio TLS echo server (the test server certificate): prints its port, serves one
// connection until EOF (our close_notify), prints the bytes it echoed, then exits.
constexpr const char* kPythonServer = R"PY(
import asyncio, ssl, sys

async def main(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
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
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
        print(total, flush=True)
        done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.wait_for(done.wait(), 60)

asyncio.run(main(sys.argv[1], sys.argv[2]))
)PY";

/// `python3 -c script` with the arguments `args` (already quoted for sh) and then the test
/// server's certificate and key.
std::string python_with_certs(const std::string& script, const std::string& args = "") {
  return "python3 -c " + sh_quote(script) + " " + args + " " + sh_quote(certs().server_pem) + " " +
         sh_quote(certs().server_key);
}

/// The port a Python server child prints first; 0, with a failure recorded, when it did not
/// start or printed something else.
Coro<std::uint16_t> python_server_port(Child& child) {
  EXPECT_TRUE(child.started());
  if (!child.started()) co_return 0;
  const std::string port_line = co_await asyncio::wait_for(line_in_thread(&child), 60.0);
  const int port = std::atoi(port_line.c_str());
  EXPECT_GT(port, 0) << "python3 printed [" << port_line << "] instead of its port";
  co_return port > 0 ? static_cast<std::uint16_t>(port) : 0;
}

Coro<void> python_server_body() {
  Child child(python_with_certs(kPythonServer));
  const std::uint16_t port = co_await python_server_port(child);
  if (port == 0) co_return;
  const ssl::SSLContext cctx = client_context();
  auto [reader, writer] = co_await asyncio::open_connection(
      "127.0.0.1", port, ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  const auto msgs = make_messages();
  Task<void> sending = create_task(send_messages(writer, msgs));
  const int bad = co_await check_echoes(reader, msgs);
  co_await sending;
  EXPECT_EQ(bad, -1) << "message " << bad << " came back different";
  writer.close();
  co_await writer.wait_closed();
  const Outcome o = co_await asyncio::wait_for(wait_in_thread(&child), 60.0);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, std::to_string(kMessage * kMessages) + "\n")
      << "the Python server did not count every byte";
}

TEST_P(TlsRealClients, OurTlsClientGetsEveryByteFromAPythonAsyncioSslEchoServer) {
  SKIP_WITHOUT("python3");
  run(python_server_body());
}

// test_remote_shutdown_receives_trailing_data: a Python TLS server (ssl.MemoryBIO over a plain
// socket, as CPython's test) answers "ping", then ends its side, with close_notify ("notify")
// or a TCP half-close ("eof"), and goes on reading. Our client has 4 MiB of writes still
// buffered: the server must get every byte before our close_notify (with "notify", which it
// checks) or our end.
/// The start of the Python peers below: a server context with the certificate and key (the
/// last two arguments), one connection accepted on a port it prints first: `raw`.
constexpr const char* kPythonAcceptOne = R"PY(
import socket, ssl, sys, time

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[-2], sys.argv[-1])
lsock = socket.socket()
lsock.bind(("127.0.0.1", 0))
lsock.listen(1)
lsock.settimeout(60)
print(lsock.getsockname()[1], flush=True)
raw, _ = lsock.accept()
raw.settimeout(60)
)PY";

constexpr const char* kPythonShutdownFirst = R"PY(
mode = sys.argv[1]
sock = raw
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(incoming, outgoing, server_side=True)

def pump():
    if outgoing.pending:
        sock.sendall(outgoing.read())

def feed():
    data = sock.recv(65536)
    if data:
        incoming.write(data)
    else:
        incoming.write_eof()

while True:
    try:
        obj.do_handshake()
        pump()
        break
    except ssl.SSLWantReadError:
        pump()
        feed()
got = b""
while len(got) < 4:
    try:
        got += obj.read(4 - len(got))
    except ssl.SSLWantReadError:
        feed()
assert got == b"ping", got
obj.write(b"pong")
pump()
time.sleep(0.2)  # the client fills its buffers meanwhile
if mode == "notify":
    try:
        obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    pump()
else:
    sock.shutdown(socket.SHUT_WR)
total = 0
while True:
    try:
        total += len(obj.read(65536))
    except ssl.SSLWantReadError:
        feed()
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        break
print(total, flush=True)
if mode == "notify":
    obj.unwrap()  # the client's close_notify came: no error
sock.close()
)PY";

constexpr std::size_t kTrailing = std::size_t{4} << 20;

Coro<void> trailing_data_body(std::string mode) {
  Child child(python_with_certs(std::string(kPythonAcceptOne) + kPythonShutdownFirst, mode));
  const std::uint16_t port = co_await python_server_port(child);
  if (port == 0) co_return;
  const ssl::SSLContext cctx = client_context();
  auto [reader, writer] = co_await asyncio::open_connection(
      "127.0.0.1", port, ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  writer.write("ping");
  EXPECT_EQ(co_await reader.readexactly(4), "pong");
  writer.write(std::string(kTrailing, 'x'));  // no drain(): it waits in the buffers
  std::exception_ptr e;
  std::string rest;
  try {
    rest = co_await reader.read();
  } catch (const asyncio::ConnectionError&) {
    e = std::current_exception();
  }
  EXPECT_EQ(rest, "");
  const Outcome o = co_await asyncio::wait_for(wait_in_thread(&child), 60.0);
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(o.out, std::to_string(kTrailing) + "\n") << "the server did not get every byte";
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const asyncio::ConnectionError&) {
  }
}

TEST_P(TlsRealClients, APeerThatSendsCloseNotifyFirstStillGetsEveryByteWeBuffered) {
  SKIP_WITHOUT("python3");
  run(trailing_data_body("notify"));
}

TEST_P(TlsRealClients, APeerThatHalfClosesFirstStillGetsEveryByteWeBuffered) {
  SKIP_WITHOUT("python3");
  run(trailing_data_body("eof"));
}

// test_shutdown_timeout_handler_not_set: the peer (Python's ssl socket) sends "hello", gets
// "world", sends "extra bytes" and shuts its side down without close_notify, while our
// protocol has paused reading. After resume_reading() the protocol gets the extra bytes, then
// eof_received(), then connection_lost(null); no shutdown time-out fires meanwhile.
constexpr const char* kPythonExtraThenEof = R"PY(
sock = ctx.wrap_socket(raw, server_side=True)
sock.sendall(b"hello")
assert sock.recv(1024) == b"world"
sock.sendall(b"extra bytes")
sock.shutdown(socket.SHUT_WR)  # no close_notify
print("eof", flush=True)
while sock.recv(65536):  # until our end (plain reads now: whatever it sends first)
    pass
sock.close()
)PY";

/// Answers "hello" with "world" and pauses reading; records the rest.
struct PausesAfterHello final : asyncio::Protocol {
  asyncio::Transport* t = nullptr;
  std::string extra;
  std::vector<std::string> events;
  std::exception_ptr lost_with;
  asyncio::Event lost;
  void connection_made(asyncio::Transport& tr) override { t = &tr; }
  void data_received(std::string_view d) override {
    if (d == "hello") {
      t->write("world");
      t->pause_reading();
      return;
    }
    extra.append(d);
    events.emplace_back("data");
  }
  bool eof_received() override {
    events.emplace_back("eof");
    return false;
  }
  void connection_lost(std::exception_ptr e) override {
    events.emplace_back("lost");
    lost_with = std::move(e);
    lost.set();
  }
};

Coro<void> paused_then_eof_body() {
  Child child(python_with_certs(std::string(kPythonAcceptOne) + kPythonExtraThenEof));
  const std::uint16_t port = co_await python_server_port(child);
  if (port == 0) co_return;
  const ssl::SSLContext cctx = client_context();
  auto p = std::make_shared<PausesAfterHello>();
  auto factory = [p] { return p; };  // (outside the co_await: g++ 12)
  auto [t, proto] = co_await asyncio::create_connection(
      std::move(factory), "127.0.0.1", port,
      ConnectionOptions{.ssl = cctx, .server_hostname = "localhost"});
  EXPECT_EQ(co_await asyncio::wait_for(line_in_thread(&child), 60.0), "eof\n");
  co_await asyncio::sleep(0.1);  // the extra bytes and the end arrive while reading is paused
  EXPECT_EQ(p->extra, "");
  t->resume_reading();
  co_await asyncio::wait_for(p->lost.wait(), 30.0);
  EXPECT_EQ(p->extra, "extra bytes");
  EXPECT_EQ(p->events, (std::vector<std::string>{"data", "eof", "lost"}));
  EXPECT_FALSE(p->lost_with) << asyncio_test::what_of(p->lost_with);
  const Outcome o = co_await asyncio::wait_for(wait_in_thread(&child), 60.0);
  EXPECT_EQ(o.exit_code, 0) << o.out;
}

TEST_P(TlsRealClients, PausedReadingGetsTheDataAndTheEndAfterResume) {
  SKIP_WITHOUT("python3");
  run(paused_then_eof_body());
}

// =================================================================================================
// curl over HTTPS keep-alive
// =================================================================================================

Coro<void> curl_body() {
  const ssl::SSLContext sctx = server_context();
  auto stats = std::make_shared<HttpStats>();
  Server server = co_await asyncio::start_server(https_hello(stats), "127.0.0.1", 0,
                                                 ServerOptions{.ssl = sctx});
  const std::string port = std::to_string(server.port());
  const std::string url = "https://localhost:" + port + "/";
  const Outcome o =
      co_await run_in_thread("curl -sv --max-time 20 --cacert " + sh_quote(certs().ca_pem) +
                             " --resolve localhost:" + port + ":127.0.0.1 " + url + " " + url);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "Hello, World!Hello, World!") << o.err;
  const bool reused = o.err.find("Re-using existing connection") != std::string::npos ||
                      o.err.find("Reusing existing connection") != std::string::npos;
  EXPECT_TRUE(reused) << o.err;
  EXPECT_NE(o.err.find("SSL certificate verify ok"), std::string::npos) << o.err;
  EXPECT_EQ(stats->connections, 1) << "curl did not keep its connection alive";
  EXPECT_EQ(stats->requests, 2);
  EXPECT_EQ(stats->bad_requests, 0);
  EXPECT_EQ(stats->handler_errors, 0);
  EXPECT_EQ(stats->protocol, "TLSv1.3");
  co_await close_server(server);
}

TEST_P(TlsRealClients, CurlFetchesTwiceOverOneHttpsKeepAliveConnection) {
  SKIP_WITHOUT("curl");
  run(curl_body());
}

INSTANTIATE_TEST_SUITE_P(Engines, TlsRealClients,
                         ::testing::Values(Backend::epoll, Backend::io_uring), param_name);

}  // namespace
