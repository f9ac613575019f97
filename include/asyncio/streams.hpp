// asyncio/streams.hpp - the high-level stream API (Python: asyncio/streams.py): open_connection,
// start_server and their Unix variants, StreamReader, StreamWriter.
//
// StreamReader and StreamWriter are handles: copies share one stream, and a handle may be kept
// in a lambda or a task for as long as you like. A connection whose every StreamWriter handle is
// gone closes itself (Python closes it when the writer is garbage collected). Member coroutines
// hold the stream themselves, so `create_task(reader.read(10))` is safe even if `reader` goes.
//
// Like every loop-bound object, a stream belongs to the loop it was made on (docs/design/io.md,
// "Streams").
#pragma once

#include <any>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/coroutines.hpp"
#include "asyncio/sockets.hpp"
#include "asyncio/transports.hpp"

namespace asyncio {

namespace detail {
class StreamReaderState;
class StreamWriterState;
}  // namespace detail

/// The default buffer limit of a stream (64 KiB). Python: asyncio.streams._DEFAULT_LIMIT
inline constexpr std::size_t kDefaultStreamLimit = 65536;

/// The receiving half of a stream: a buffer the transport fills, read with coroutines. Reading
/// pauses the transport while more than 2 × limit bytes are buffered. Python: asyncio.StreamReader
class StreamReader {
 public:
  /// A reader fed by hand with feed_data()/feed_eof() (tests, parsers). ValueError if limit is
  /// 0. Python: StreamReader(limit=...)
  explicit StreamReader(std::size_t limit = kDefaultStreamLimit);
  explicit StreamReader(std::shared_ptr<detail::StreamReaderState> state) noexcept
      : state_(std::move(state)) {}

  /// Up to `n` bytes (at least one unless at EOF, when it returns ""); n < 0: everything until
  /// EOF; n == 0: "" at once. Python: read(n=-1)
  Coro<std::string> read(std::ptrdiff_t n = -1) const;
  /// One line, with its "\n"; at EOF the partial last line (or ""). Past the limit: ValueError
  /// (the line is dropped from the buffer, as Python does). Python: readline()
  Coro<std::string> readline() const;
  /// Exactly `n` bytes; IncompleteReadError (with the bytes read, `partial`) at an early EOF.
  /// Python: readexactly(n)
  Coro<std::string> readexactly(std::size_t n) const;
  /// Up to and including `separator` (non-empty, else ValueError). LimitOverrunError when
  /// nothing is found within the limit (the data stays buffered); IncompleteReadError at EOF
  /// first. Python: readuntil(separator=b'\n')
  Coro<std::string> readuntil(std::string separator = "\n") const;
  /// True when EOF was fed and the buffer is empty. Python: at_eof()
  [[nodiscard]] bool at_eof() const noexcept;

  /// Appends bytes to the buffer and wakes a waiting read. Python: feed_data(data)
  void feed_data(std::string_view data) const;
  /// Marks the end of the stream. Python: feed_eof()
  void feed_eof() const;
  /// Makes pending and future reads throw `exc`. Python: set_exception(exc)
  void set_exception(std::exception_ptr exc) const;
  /// The exception set (null if none). Python: exception()
  [[nodiscard]] std::exception_ptr exception() const noexcept;
  /// The buffer limit. Python: _limit
  [[nodiscard]] std::size_t limit() const noexcept;
  /// Bytes buffered now (Python: len(reader._buffer)).
  [[nodiscard]] std::size_t buffered() const noexcept;

  [[nodiscard]] const std::shared_ptr<detail::StreamReaderState>& state() const noexcept {
    return state_;
  }

 private:
  std::shared_ptr<detail::StreamReaderState> state_;
};

/// The sending half of a stream, over a transport. Python: asyncio.StreamWriter
class StreamWriter {
 public:
  explicit StreamWriter(std::shared_ptr<detail::StreamWriterState> state) noexcept
      : state_(std::move(state)) {}

  /// Queues `data` on the transport (sent at once when it can be). Python: write(data)
  void write(std::string_view data) const;
  /// Writes the pieces as one write. Python: writelines(data)
  template <std::ranges::input_range R>
  requires std::is_convertible_v<std::ranges::range_reference_t<R>, std::string_view>
  void writelines(R&& pieces) const {
    std::vector<std::string_view> views;
    for (auto&& p : pieces) views.emplace_back(p);
    writelines_views(views);
  }
  /// Waits until the transport's buffer is at or below its low-water mark (at once when it is
  /// not above the high-water mark). Rethrows the error that closed the connection
  /// (ConnectionResetError "Connection lost" when it closed under a pending write). Python: drain()
  Coro<void> drain() const;
  /// Upgrades the connection to TLS with `ctx` after a drain(): the handshake runs, and once it
  /// is done this writer and its reader carry TLS (get_extra_info("peercert")...). The side is
  /// the stream's: a start_server() stream is the server (so `options.server_side` must be left
  /// false). Failure or cancellation closes the connection. Python: start_tls(sslcontext,
  /// server_hostname=..., ssl_handshake_timeout=..., ssl_shutdown_timeout=...)
  Coro<void> start_tls(const ssl::SSLContext& ctx, StartTlsOptions options = {}) const;
  /// Closes the write side after the buffered data (RuntimeError over TLS, which cannot).
  /// Python: write_eof()
  void write_eof() const;
  /// Python: can_write_eof()
  [[nodiscard]] bool can_write_eof() const noexcept;
  /// Closes the connection (after sending what is buffered). Python: close()
  void close() const;
  /// Waits until the connection is closed. Python: wait_closed()
  Coro<void> wait_closed() const;
  /// Python: is_closing()
  [[nodiscard]] bool is_closing() const noexcept;
  /// As Transport::get_extra_info(). Python: get_extra_info(name)
  [[nodiscard]] std::any get_extra_info(std::string_view name) const;
  /// The peer's address. Python: get_extra_info('peername')
  [[nodiscard]] SocketAddress peername() const;
  /// This end's address. Python: get_extra_info('sockname')
  [[nodiscard]] SocketAddress sockname() const;
  /// The transport underneath. Python: transport
  [[nodiscard]] Transport& transport() const noexcept;

  [[nodiscard]] const std::shared_ptr<detail::StreamWriterState>& state() const noexcept {
    return state_;
  }

 private:
  void writelines_views(std::span<const std::string_view> views) const;
  std::shared_ptr<detail::StreamWriterState> state_;
};

/// What start_server() runs for each connection, as its own task. Python: client_connected_cb
using ClientConnected = std::function<Coro<void>(StreamReader, StreamWriter)>;

/// Connects to `host`:`port` (resolved without blocking the loop; addresses tried in order, or
/// with happy eyeballs). `auto [reader, writer] = co_await open_connection("example.com", 80);`
/// Python: asyncio.open_connection(host, port, limit=..., ...)
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            ConnectionOptions options = {});
/// Python: asyncio.open_unix_connection(path)
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectionOptions options = {});
/// Serves `host`:`port` (empty host: every interface; port 0: a free one, see Server::port()),
/// running `cb(reader, writer)` as a task for each connection. A handler that ends with an
/// exception is reported to the loop's exception handler and its connection closed.
/// Python: asyncio.start_server(client_connected_cb, host, port, ...)
Coro<Server> start_server(ClientConnected cb, std::string host, std::uint16_t port,
                          ServerOptions options = {});
/// Python: asyncio.start_unix_server(client_connected_cb, path)
Coro<Server> start_unix_server(ClientConnected cb, std::string path, ServerOptions options = {});

}  // namespace asyncio
