// http_hello: a minimal HTTP/1.1 server that answers every request with "Hello, World!",
// with keep-alive and pipelining, on one or several loops.
//
//   http_hello [--host HOST] [--port PORT] [--loops N] [--backend epoll|io_uring]
//              [--tls --cert CERT.pem --key KEY.pem]
//   http_hello --self-test [--loops N] [--backend epoll|io_uring] [--tls --cert C --key K]
//
// Listens on HOST (default 127.0.0.1) and PORT (default 8080; 0: the kernel picks one) and
// prints "listening on HOST:PORT" as its first line. With --loops N, N threads each run their
// own event loop with their own start_server() on the same port (ServerOptions::reuse_port, so
// the kernel spreads the connections among them); the first loop picks the port when PORT is 0.
// Runs until Ctrl-C. Try: wrk -t2 -c64 http://127.0.0.1:8080/
//
// With --tls it serves HTTPS: every loop's start_server() gets `.ssl` = one ssl::SSLContext
// holding CERT.pem and KEY.pem (one context may serve several loops on several threads), and
// each connection is answered as below once its TLS handshake is done. Try:
//     curl --cacert ca.pem https://localhost:8080/ https://localhost:8080/
//
// A connection is served by one task: it reads whatever came (reader.read(65536)), answers
// every complete request in the buffer (a request ends at "\r\n\r\n", then Content-Length bytes
// of body, skipped - even when they come in later reads), sends the answers in one write, and
// waits in drain() if the client is slow to read them. The connection stays open unless the
// client sends "Connection: close", or speaks HTTP/1.0 without "Connection: keep-alive".
// Chunked request bodies are not supported (501), and a malformed request gets 400; both close.
//
// --self-test starts the server on port 0 and, from a client loop in the main thread, sends two
// requests over one connection with open_connection (a POST with a body, pipelined with a GET
// that asks to close, split across two writes), checks both answers and the end of the
// connection, then does the same for HTTP/1.0 keep-alive; exit 0 when all is as expected.
// With --tls the self-test's client speaks TLS too, and trusts the certificates in CERT.pem (a
// self-signed certificate for localhost, or one followed by its CA).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <asyncio.hpp>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxHead = 64 * 1024;  // a longer request head gets 431
constexpr std::string_view kBody = "Hello, World!";

std::string response(std::string_view status, bool keep_alive, std::string_view body) {
  std::string r = "HTTP/1.1 ";
  r += status;
  r += "\r\nServer: asyncio-cpp\r\nContent-Type: text/plain\r\nContent-Length: ";
  r += std::to_string(body.size());
  r += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  r += body;
  return r;
}

const std::string kHelloKeepAlive = response("200 OK", true, kBody);
const std::string kHelloClose = response("200 OK", false, kBody);

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// What the server needs to know about a request head.
struct Head {
  bool ok = false;  // well-formed
  bool keep_alive = true;
  bool chunked = false;  // a Transfer-Encoding body: not supported
  std::size_t content_length = 0;
};

/// Parses "METHOD TARGET HTTP/1.x\r\nName: value\r\n..." (without the final blank line).
Head parse_head(std::string_view head) {
  Head h;
  std::size_t eol = head.find("\r\n");
  const std::string_view request_line = head.substr(0, eol);
  const std::size_t sp1 = request_line.find(' ');
  const std::size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return h;
  const std::string_view version = request_line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return h;
  bool close = false;
  bool keep_alive = false;
  while (eol != std::string_view::npos) {  // one header line per pass
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return h;
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string value = lower(trim(line.substr(colon + 1)));
    if (name == "connection") {
      close = close || value.find("close") != std::string::npos;
      keep_alive = keep_alive || value.find("keep-alive") != std::string::npos;
    } else if (name == "content-length") {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return h;
      }
      h.content_length = std::stoull(value);
    } else if (name == "transfer-encoding") {
      h.chunked = true;
    }
  }
  h.keep_alive = version == "HTTP/1.1" ? !close : keep_alive && !close;
  h.ok = true;
  return h;
}

/// One connection: answers every request in the buffer, until the client closes (or asks to).
asyncio::Coro<void> handle(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  std::string buffer;
  std::size_t skip = 0;  // body bytes still to come and be skipped
  bool open = true;
  while (open) {  // until end of file, an error, or a request that closes
    std::string chunk;
    try {
      chunk = co_await reader.read(65536);
    } catch (const std::system_error&) {
      break;  // reset by the client
    }
    if (chunk.empty()) break;
    const std::size_t skipped = std::min(skip, chunk.size());
    skip -= skipped;
    buffer.append(chunk, skipped);
    std::string out;  // the answers to every complete request, sent in one write
    for (;;) {        // each pass consumes a request (at least 4 bytes) or stops
      const std::size_t end = buffer.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (buffer.size() > kMaxHead) {
          out += response("431 Request Header Fields Too Large", false, "");
          open = false;
        }
        break;
      }
      const Head h = parse_head(std::string_view(buffer).substr(0, end));
      if (!h.ok || h.chunked) {
        out += h.ok ? response("501 Not Implemented", false, "")
                    : response("400 Bad Request", false, "");
        open = false;
        break;
      }
      out += h.keep_alive ? kHelloKeepAlive : kHelloClose;
      const std::size_t body_here = std::min(h.content_length, buffer.size() - end - 4);
      buffer.erase(0, end + 4 + body_here);
      skip = h.content_length - body_here;  // > 0 only when the buffer is now empty
      if (!h.keep_alive) {
        open = false;
        break;
      }
    }
    if (!out.empty()) {
      writer.write(out);
      try {
        co_await writer.drain();
      } catch (const std::system_error&) {
        break;
      }
    }
  }
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const std::system_error&) {
  }
}

// ---- a loop per thread -----------------------------------------------------------------------

/// One event loop on its own thread, serving `host`:`port` with reuse_port until stop().
class ServerThread {
 public:
  /// `tls`: the server's context for HTTPS (null: plain HTTP); it must outlive the thread.
  ServerThread(std::string host, std::uint16_t port, asyncio::RunOptions options,
               const asyncio::ssl::SSLContext* tls)
      : host_(std::move(host)), port_(port), options_(options), tls_(tls) {}
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

 private:
  void run() {
    try {
      asyncio::run(serve(), options_);
    } catch (...) {
      if (!published_) {
        started_.set_exception(std::current_exception());  // start() rethrows it
      } else {
        std::fprintf(stderr, "http_hello: a server loop failed\n");
      }
    }
  }

  asyncio::Coro<void> serve() {
    asyncio::Event stop;
    asyncio::Server server =
        co_await asyncio::start_server(handle, host_, port_, {.reuse_port = true, .ssl = tls_});
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
  const asyncio::ssl::SSLContext* tls_;  // null: plain HTTP
  std::thread thread_;
  std::promise<std::uint16_t> started_;
  bool published_ = false;  // this thread's own: started_ was set
  std::mutex mu_;
  asyncio::EventLoop* loop_ = nullptr;  // guarded by mu_
  asyncio::Event* stop_ = nullptr;      // guarded by mu_
  bool finished_ = false;               // guarded by mu_: the loop may be gone
};

/// Starts `loops` server loops on one port (the first one picks it when `port` is 0).
/// With `tls`, they serve HTTPS.
std::vector<std::unique_ptr<ServerThread>> start_loops(const std::string& host, std::uint16_t& port,
                                                       int loops, asyncio::RunOptions options,
                                                       const asyncio::ssl::SSLContext* tls) {
  std::vector<std::unique_ptr<ServerThread>> threads;
  for (int i = 0; i < loops; ++i) {
    threads.push_back(std::make_unique<ServerThread>(host, port, options, tls));
    port = threads.back()->start();
  }
  return threads;
}

asyncio::Coro<void> wait_for_ctrl_c() {
  asyncio::Event never;
  co_await never.wait();  // cancelled by Ctrl-C: run() throws KeyboardInterrupt
}

// ---- the self-test ---------------------------------------------------------------------------

struct Response {
  std::string status;      // "HTTP/1.1 200 OK"
  std::string connection;  // the Connection header's value
  std::string body;
};

/// Reads one response (the head up to "\r\n\r\n", then Content-Length bytes of body).
asyncio::Coro<Response> read_response(asyncio::StreamReader reader) {
  const std::string head = co_await reader.readuntil("\r\n\r\n");
  Response r;
  r.status = head.substr(0, head.find("\r\n"));
  std::size_t length = 0;
  std::size_t at = head.find("\r\n");
  while (at != std::string::npos && at + 2 < head.size()) {  // one header line per pass
    const std::size_t next = head.find("\r\n", at + 2);
    const std::string line = head.substr(at + 2, next - at - 2);
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos) {
      const std::string name = lower(line.substr(0, colon));
      const std::string value(trim(std::string_view(line).substr(colon + 1)));
      if (name == "content-length") length = std::stoull(value);
      if (name == "connection") r.connection = value;
    }
    at = next;
  }
  r.body = co_await reader.readexactly(length);
  co_return r;
}

/// Checks a response, printing it; false when it is not the expected one.
bool check(const Response& r, const std::string& connection) {
  const bool ok = r.status == "HTTP/1.1 200 OK" && r.connection == connection && r.body == kBody;
  std::printf("< %s, Connection: %s, body '%s'%s\n", r.status.c_str(), r.connection.c_str(),
              r.body.c_str(), ok ? "" : "   <- FAILED");
  return ok;
}

/// Sends `first`, then `second` after a short pause, over one connection (TLS with `tls`, a
/// client's context); checks the two answers and that the server closes the connection after
/// the second.
asyncio::Coro<bool> exchange(std::uint16_t port, const asyncio::ssl::SSLContext* tls,
                             std::string first, std::string second, std::string first_connection) {
  asyncio::ConnectionOptions connect;
  if (tls != nullptr) {
    connect.ssl = tls;
    connect.server_hostname = "localhost";
  }
  auto connection = co_await asyncio::open_connection("127.0.0.1", port, connect);
  asyncio::StreamReader reader = connection.first;
  asyncio::StreamWriter writer = connection.second;
  writer.write(first);
  co_await writer.drain();
  co_await asyncio::sleep(0.05);  // the server sees a request and a half first
  writer.write(second);
  co_await writer.drain();
  bool ok = check(co_await read_response(reader), first_connection);
  ok = check(co_await read_response(reader), "close") && ok;
  const std::string rest = co_await asyncio::wait_for(reader.read(), 5s);
  std::printf("< %s\n", rest.empty() ? "end of file: the server closed the connection"
                                     : "FAILED: more bytes after the last answer");
  writer.close();
  co_await writer.wait_closed();
  co_return ok&& rest.empty();
}

/// `tls`: the client's context when the server speaks HTTPS (else null).
asyncio::Coro<int> self_test(std::uint16_t port, const asyncio::ssl::SSLContext* tls) {
  // HTTP/1.1: a POST with an 11-byte body, pipelined with a GET that asks to close, which is
  // cut in two: the server gets the POST, its body and half the GET in its first read.
  const std::string post = "POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n";
  const std::string get = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  std::printf("> %s with an 11-byte body, and the first 20 bytes of the next request\n",
              post.substr(0, post.find('\r')).c_str());
  std::printf("> the rest of it: %s with Connection: close\n",
              get.substr(0, get.find('\r')).c_str());
  bool ok = co_await exchange(port, tls, post + "hello=world" + get.substr(0, 20), get.substr(20),
                              "keep-alive");
  // HTTP/1.0: keep-alive only when asked for; the second request does not ask.
  std::printf("> GET / HTTP/1.0 (Connection: keep-alive), then GET / HTTP/1.0\n");
  ok = co_await exchange(port, tls, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                         "GET / HTTP/1.0\r\n\r\n", "keep-alive") &&
       ok;
  std::printf("%s\n", ok ? "self-test passed" : "self-test FAILED");
  co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  asyncio::RunOptions options;
  std::string host = "127.0.0.1";
  int port = 8080;
  int loops = 1;
  bool test = false;
  bool tls = false;
  std::string cert;
  std::string key;
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
    } else if (arg == "--tls") {
      tls = true;
    } else if (arg == "--cert" && has_value) {
      cert = argv[++i];
    } else if (arg == "--key" && has_value) {
      key = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--host HOST] [--port PORT] [--loops N] [--backend "
                   "epoll|io_uring] [--tls --cert CERT.pem --key KEY.pem] [--self-test]\n",
                   argv[0]);
      return 2;
    }
  }
  if (port < 0 || port > 65535 || loops < 1 || loops > 256) {
    std::fprintf(stderr, "http_hello: bad --port or --loops\n");
    return 2;
  }
  if (tls && (cert.empty() || key.empty())) {
    std::fprintf(stderr, "http_hello: --tls needs --cert CERT.pem and --key KEY.pem\n");
    return 2;
  }
  if (test) {
    host = "127.0.0.1";
    port = 0;
  }
  try {
    // HTTPS: one server context for every loop (configured before they start), and for the
    // self-test a client context that trusts the certificates in CERT.pem.
    std::optional<asyncio::ssl::SSLContext> server_tls;
    std::optional<asyncio::ssl::SSLContext> client_tls;
    if (tls) {
      server_tls.emplace(asyncio::ssl::PROTOCOL_TLS_SERVER);
      server_tls->load_cert_chain(cert, key);
      if (test) {
        client_tls.emplace(asyncio::ssl::PROTOCOL_TLS_CLIENT);
        client_tls->load_verify_locations(cert);
      }
    }
    auto where = static_cast<std::uint16_t>(port);
    std::vector<std::unique_ptr<ServerThread>> servers =
        start_loops(host, where, loops, options, server_tls ? &*server_tls : nullptr);
    std::printf("listening on %s:%u%s\n", host.c_str(), static_cast<unsigned>(where),
                tls ? " (HTTPS)" : "");
    std::printf("%d loop%s%s\n", loops, loops == 1 ? " on its own thread" : "s, a thread each",
                test ? "" : "; Ctrl-C stops");
    std::fflush(stdout);
    int status = 0;
    if (test) {
      status = asyncio::run(self_test(where, client_tls ? &*client_tls : nullptr), options);
    } else {
      try {
        asyncio::run(wait_for_ctrl_c(), options);
      } catch (const asyncio::KeyboardInterrupt&) {
      }
    }
    for (auto& s : servers) s->stop();
    return status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_hello: %s\n", e.what());
    return 1;
  }
}
