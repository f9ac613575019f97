// tls_echo: an echo server and client over TLS (Python documentation's "TCP echo server using
// streams" with `ssl=`): the same streams as echo_server, with an ssl::SSLContext passed as the
// `.ssl` option of start_server() and open_connection().
//
//   tls_echo --server --port PORT --cert CERT.pem --key KEY.pem [--host HOST]
//   tls_echo --client --host HOST --port PORT [--cafile CA.pem] [--server-hostname NAME]
//   tls_echo --self-test
//   (any of them: [--backend epoll|io_uring])
//
// The server listens on HOST (default 127.0.0.1) and PORT (0: the kernel picks one), prints
// "listening on HOST:PORT", and echoes every byte back over TLS until the client closes; it
// prints each connection's protocol and cipher, and serves until Ctrl-C. The client verifies the
// server's certificate against CA.pem (the system's CAs without --cafile) and its name (HOST, or
// NAME), sends its standard input, prints what comes back to stdout, and closes once every byte
// sent came back (what the connection negotiated goes to stderr). For instance:
//     tls_echo --server --port 8443 --cert server.pem --key server.key &
//     echo hello | tls_echo --client --host localhost --port 8443 --cafile ca.pem
//
// --self-test makes a throwaway CA and a server certificate for localhost with the `openssl`
// command in a temporary directory (removed at the end: no key is kept anywhere), runs the
// server on a free port of 127.0.0.1 and a client in the same loop that sends two lines and a
// 1 MiB block and checks every byte of the echoes, prints the negotiated protocol, cipher and
// the server certificate's subject; exit 0 when all came back intact (77: no openssl command).
//
// Python:
//     ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
//     ctx.load_cert_chain('server.pem', 'server.key')
//     server = await asyncio.start_server(handle_echo, '127.0.0.1', 8443, ssl=ctx)
//     ...
//     ctx = ssl.create_default_context(cafile='ca.pem')
//     reader, writer = await asyncio.open_connection('localhost', 8443, ssl=ctx)
//     print(writer.get_extra_info('cipher'), writer.get_extra_info('peercert')['subject'])
#include <any>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <asyncio.hpp>

namespace {

namespace ssl = asyncio::ssl;

// ---- What a TLS connection negotiated -------------------------------------------------------

/// "commonName=localhost, organizationName=..." (Python: cert['subject']).
std::string name_of(const std::vector<std::pair<std::string, std::string>>& name) {
  std::string out;
  for (const auto& [attribute, value] : name) {
    if (!out.empty()) out += ", ";
    out += attribute + "=" + value;
  }
  return out;
}

/// "TLSv1.3, cipher TLS_AES_256_GCM_SHA384 (256 bits)" (Python: writer.get_extra_info('cipher')).
std::string cipher_of(const asyncio::StreamWriter& writer) {
  const std::any c = writer.get_extra_info("cipher");
  if (!c.has_value()) return "no cipher";
  const auto cipher = std::any_cast<ssl::Cipher>(c);
  return cipher.protocol + ", cipher " + cipher.name + " (" + std::to_string(cipher.secret_bits) +
         " bits)";
}

/// Prints the protocol, cipher and server certificate of a client's connection to `out`.
void print_tls_info(std::FILE* out, const asyncio::StreamWriter& writer) {
  std::fprintf(out, "negotiated: %s\n", cipher_of(writer).c_str());
  const std::any pc = writer.get_extra_info("peercert");
  if (!pc.has_value()) {
    std::fprintf(out, "the server sent no certificate\n");
    return;
  }
  const auto cert = std::any_cast<ssl::Certificate>(pc);
  std::fprintf(out, "server certificate: subject %s\n", name_of(cert.subject).c_str());
  std::fprintf(out, "                    issuer  %s\n", name_of(cert.issuer).c_str());
  std::string san;
  for (const auto& [kind, value] : cert.subject_alt_name) {
    san += (san.empty() ? "" : ", ") + kind + ":" + value;
  }
  std::fprintf(out, "                    names   %s; valid until %s\n", san.c_str(),
               cert.not_after.c_str());
}

// ---- The server ------------------------------------------------------------------------------

/// One connection (its handshake is done when this runs): echo every chunk until end of file.
asyncio::Coro<void> handle_echo(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
  const std::string peer = writer.peername().to_string();
  std::printf("connection from %s: %s\n", peer.c_str(), cipher_of(writer).c_str());
  std::fflush(stdout);
  std::size_t echoed = 0;
  try {
    for (;;) {  // ends at the client's end of file (its TLS close_notify, or a cut connection)
      std::string data = co_await reader.read(65536);
      if (data.empty()) break;
      writer.write(data);
      echoed += data.size();
      co_await writer.drain();  // back-pressure: do not read more than the client takes
    }
  } catch (const std::system_error& e) {
    std::printf("connection from %s: %s\n", peer.c_str(), e.what());  // reset, or a TLS error
  }
  writer.close();  // sends close_notify, then closes
  try {
    co_await writer.wait_closed();
  } catch (const std::system_error&) {
  }
  std::printf("connection from %s closed: %zu bytes echoed\n", peer.c_str(), echoed);
  std::fflush(stdout);
}

asyncio::Coro<void> serve(std::string host, std::uint16_t port, std::string cert, std::string key) {
  ssl::SSLContext ctx(ssl::PROTOCOL_TLS_SERVER);
  ctx.load_cert_chain(cert, key);  // SSLError when they do not load or do not match
  asyncio::Server server = co_await asyncio::start_server(handle_echo, host, port, {.ssl = ctx});
  std::printf("listening on %s:%u (TLS)\n", host.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  co_await server.serve_forever();  // until cancelled (Ctrl-C)
}

// ---- The client ------------------------------------------------------------------------------

/// Feeds a StreamReader from a transport (Python: asyncio.StreamReaderProtocol).
class FeedReader final : public asyncio::Protocol {
 public:
  explicit FeedReader(asyncio::StreamReader reader) : reader_(std::move(reader)) {}
  void data_received(std::string_view data) override { reader_.feed_data(data); }
  bool eof_received() override {
    reader_.feed_eof();
    return false;
  }
  void connection_lost(std::exception_ptr exc) override {
    if (exc) {
      reader_.set_exception(exc);
    } else if (!reader_.at_eof()) {
      reader_.feed_eof();
    }
  }

 private:
  asyncio::StreamReader reader_;
};

/// Standard input: a pipe, a terminal or a socket is read through a read-pipe transport
/// (Python: loop.connect_read_pipe(lambda: StreamReaderProtocol(reader), sys.stdin)); a regular
/// file, which is always ready, with read(2).
class Input {
 public:
  Input() {
    struct stat st {};
    if (::fstat(STDIN_FILENO, &st) == 0 &&
        (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode))) {
      const int fd = ::dup(STDIN_FILENO);  // the transport closes its fd: keep fd 0 open
      if (fd < 0) throw std::system_error(errno, std::generic_category(), "dup(0)");
      pipe_.emplace();
      auto protocol = std::make_shared<FeedReader>(*pipe_);
      transport_ = asyncio::connect_read_pipe([protocol] { return protocol; }, fd).transport;
    }
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() { close(); }

  /// The next chunk ("" at end of file, or once closed).
  asyncio::Coro<std::string> read() {
    if (pipe_) co_return co_await pipe_->read(65536);
    if (closed_) co_return std::string();
    std::string chunk(65536, '\0');
    const ssize_t n = ::read(STDIN_FILENO, chunk.data(), chunk.size());
    chunk.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    co_return chunk;
  }
  /// Stops reading (a pending read() ends with "").
  void close() {
    closed_ = true;
    if (transport_) transport_->close();
  }

 private:
  std::optional<asyncio::StreamReader> pipe_;
  std::shared_ptr<asyncio::Transport> transport_;
  bool closed_ = false;
};

/// How far the echo is.
struct Progress {
  std::size_t sent = 0;
  std::size_t received = 0;
  bool input_done = false;   // standard input ended (or the server closed)
  asyncio::Event caught_up;  // set once everything sent came back, or at the server's EOF
};

/// Sends standard input to the server.
asyncio::Coro<void> send_input(asyncio::StreamWriter writer, Input& input, Progress& p) {
  for (;;) {
    std::string chunk = co_await input.read();
    if (chunk.empty()) break;
    writer.write(chunk);
    p.sent += chunk.size();
    co_await writer.drain();
  }
  p.input_done = true;
  if (p.received >= p.sent) p.caught_up.set();
}

/// Prints what comes back until the server closes (or the task is cancelled).
asyncio::Coro<void> print_output(asyncio::StreamReader reader, Input& input, Progress& p) {
  for (;;) {
    std::string data = co_await reader.read(65536);
    if (data.empty()) break;
    std::fwrite(data.data(), 1, data.size(), stdout);
    std::fflush(stdout);
    p.received += data.size();
    if (p.input_done && p.received >= p.sent) p.caught_up.set();
  }
  input.close();  // the server is gone: stop sending
  p.caught_up.set();
}

asyncio::Coro<void> wait_event(asyncio::Event& event) {
  co_await event.wait();
}

asyncio::Coro<int> run_client(std::string host, std::uint16_t port, std::string cafile,
                              std::string server_hostname) {
  // Verifies the server's certificate (against cafile, or the system's CAs) and its name.
  const ssl::SSLContext ctx = ssl::create_default_context(ssl::Purpose::SERVER_AUTH, cafile);
  asyncio::ConnectionOptions options{.ssl = ctx};
  if (!server_hostname.empty()) options.server_hostname = server_hostname;
  auto [reader, writer] = co_await asyncio::open_connection(host, port, options);
  std::fprintf(stderr, "connected to %s\n", writer.peername().to_string().c_str());
  print_tls_info(stderr, writer);

  Input input;
  Progress p;
  asyncio::Task<void> sending = asyncio::create_task(send_input(writer, input, p));
  asyncio::Task<void> printing = asyncio::create_task(print_output(reader, input, p));
  std::exception_ptr failed;
  try {
    co_await sending;
    co_await asyncio::wait_for(wait_event(p.caught_up), 30.0);  // the last echoes
  } catch (const std::exception&) {
    failed = std::current_exception();
  }
  printing.cancel();
  try {
    co_await printing;
  } catch (const asyncio::CancelledError&) {
  } catch (const std::system_error&) {
  }
  writer.close();  // close_notify, then the TCP close
  try {
    co_await writer.wait_closed();
  } catch (const std::system_error&) {
  }
  if (failed) std::rethrow_exception(failed);
  std::fprintf(stderr, "sent %zu bytes, %zu came back\n", p.sent, p.received);
  co_return p.received == p.sent ? 0 : 1;
}

// ---- The self-test ---------------------------------------------------------------------------

/// A temporary directory, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tls_echo-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool run_quietly(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;  // NOLINT(cert-env33-c)
}

/// A CA (ca.pem) and a certificate it signed for localhost and 127.0.0.1 (server.pem,
/// server.key), EC P-256 keys, made with the openssl command in `dir`. False if it failed.
bool make_certificates(const TempDir& dir) {
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::ofstream(dir.file("server.ext")) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  return run_quietly("openssl req -x509" + key + " -keyout " + dir.file("ca.key") + " -out " +
                     dir.file("ca.pem") +
                     " -days 1 -subj '/O=tls_echo self-test/CN=tls_echo throwaway CA'") &&
         run_quietly("openssl req -new" + key + " -keyout " + dir.file("server.key") + " -out " +
                     dir.file("server.csr") + " -subj '/O=tls_echo self-test/CN=localhost'") &&
         run_quietly("openssl x509 -req -in " + dir.file("server.csr") + " -CA " +
                     dir.file("ca.pem") + " -CAkey " + dir.file("ca.key") +
                     " -CAcreateserial -days 1 -out " + dir.file("server.pem") + " -extfile " +
                     dir.file("server.ext"));
}

/// `n` bytes of a pattern that a lost, repeated or shifted byte would break.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
  return s;
}

/// Sends `data` in 64 KiB pieces, draining after each.
asyncio::Coro<void> send_all(asyncio::StreamWriter writer, const std::string& data) {
  for (std::size_t at = 0; at < data.size(); at += 65536) {
    writer.write(std::string_view(data).substr(at, 65536));
    co_await writer.drain();
  }
}

/// Sends `line` and checks that it comes back.
asyncio::Coro<bool> echo_line(asyncio::StreamReader reader, asyncio::StreamWriter writer,
                              std::string line) {
  writer.write(line);
  co_await writer.drain();
  const std::string back = co_await reader.readline();
  const bool ok = back == line;
  line.pop_back();
  std::printf("> %s\n< %s%s\n", line.c_str(), ok ? line.c_str() : "(something else)",
              ok ? "" : "   <- FAILED");
  co_return ok;
}

asyncio::Coro<bool> self_test(std::string ca, std::string cert, std::string key) {
  ssl::SSLContext server_ctx(ssl::PROTOCOL_TLS_SERVER);
  server_ctx.load_cert_chain(cert, key);
  ssl::SSLContext client_ctx(ssl::PROTOCOL_TLS_CLIENT);  // verifies, checks the host name
  client_ctx.load_verify_locations(ca);

  asyncio::Server server =
      co_await asyncio::start_server(handle_echo, "127.0.0.1", 0, {.ssl = server_ctx});
  std::printf("listening on 127.0.0.1:%u (TLS)\n", static_cast<unsigned>(server.port()));
  auto [reader, writer] = co_await asyncio::open_connection(
      "127.0.0.1", server.port(), {.ssl = client_ctx, .server_hostname = "localhost"});
  print_tls_info(stdout, writer);

  bool ok = co_await echo_line(reader, writer, "hello over TLS\n");
  ok = co_await echo_line(reader, writer, "a second line\n") && ok;

  // 1 MiB, sent while the echo is read back (each side's drain() waits for the other).
  const std::string block = pattern(std::size_t{1} << 20);
  asyncio::Task<void> sending = asyncio::create_task(send_all(writer, block));
  const std::string back = co_await reader.readexactly(block.size());
  co_await sending;
  std::size_t first_difference = 0;
  while (first_difference < block.size() && back[first_difference] == block[first_difference]) {
    ++first_difference;
  }
  const bool block_ok = first_difference == block.size();
  std::printf("> %zu bytes\n< %zu bytes, %s\n", block.size(), back.size(),
              block_ok ? "every byte intact" : "DIFFERENT");
  if (!block_ok) std::printf("first difference at byte %zu\n", first_difference);
  ok = ok && block_ok;

  writer.close();  // the server sees EOF and closes its side
  co_await writer.wait_closed();
  server.close();
  co_await asyncio::wait_for(server.wait_closed(), 10.0);
  std::printf("%s\n", ok ? "self-test passed" : "self-test FAILED");
  co_return ok;
}

void usage() {
  std::puts(
      "usage: tls_echo --server --port PORT --cert CERT.pem --key KEY.pem [--host HOST]\n"
      "       tls_echo --client --host HOST --port PORT [--cafile CA.pem] "
      "[--server-hostname NAME]\n"
      "       tls_echo --self-test\n"
      "       (any of them: [--backend epoll|io_uring])");
}

}  // namespace

int main(int argc, char** argv) {
  enum class Mode { none, server, client, self_test } mode = Mode::none;
  std::string host = "127.0.0.1";
  long port = -1;
  std::string cert;
  std::string key;
  std::string cafile;
  std::string server_hostname;
  asyncio::RunOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--server") {
      mode = Mode::server;
    } else if (a == "--client") {
      mode = Mode::client;
    } else if (a == "--self-test") {
      mode = Mode::self_test;
    } else if (a == "--host" && has_value) {
      host = argv[++i];
    } else if (a == "--port" && has_value) {
      port = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--cert" && has_value) {
      cert = argv[++i];
    } else if (a == "--key" && has_value) {
      key = argv[++i];
    } else if (a == "--cafile" && has_value) {
      cafile = argv[++i];
    } else if (a == "--server-hostname" && has_value) {
      server_hostname = argv[++i];
    } else if (a == "--backend" && has_value &&
               (std::strcmp(argv[i + 1], "epoll") == 0 ||
                std::strcmp(argv[i + 1], "io_uring") == 0)) {
      options.backend = std::strcmp(argv[++i], "epoll") == 0 ? asyncio::Backend::epoll
                                                             : asyncio::Backend::io_uring;
    } else {
      usage();
      return a == "--help" ? 0 : 2;
    }
  }
  const bool bad_port = port < (mode == Mode::server ? 0 : 1) || port > 65535;
  if ((mode == Mode::server && (bad_port || cert.empty() || key.empty())) ||
      (mode == Mode::client && bad_port)) {
    usage();
    return 2;
  }
  try {
    switch (mode) {
      case Mode::server:
        try {
          asyncio::run(serve(host, static_cast<std::uint16_t>(port), cert, key), options);
        } catch (const asyncio::KeyboardInterrupt&) {
        }
        return 0;
      case Mode::client:
        return asyncio::run(
            run_client(host, static_cast<std::uint16_t>(port), cafile, server_hostname), options);
      case Mode::self_test: {
#ifndef ASYNCIO_HAS_OPENSSL
        std::puts("tls_echo: asyncio-cpp was built without OpenSSL: skipped");
        return 77;
#endif
        if (!run_quietly("openssl version")) {
          std::puts("tls_echo: no openssl command to make the throwaway certificates: skipped");
          return 77;
        }
        const TempDir dir;
        if (!make_certificates(dir)) {
          std::fputs("tls_echo: openssl failed to make the certificates\n", stderr);
          return 1;
        }
        std::puts("made a throwaway CA and a certificate for localhost with openssl");
        return asyncio::run(
                   self_test(dir.file("ca.pem"), dir.file("server.pem"), dir.file("server.key")),
                   options)
                   ? 0
                   : 1;
      }
      case Mode::none:
        break;
    }
  } catch (const asyncio::KeyboardInterrupt&) {
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tls_echo: %s\n", e.what());
    return 1;
  }
  usage();
  return 2;
}
