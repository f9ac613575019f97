// asyncio/protocols.hpp - what a transport calls when things happen on its connection (Python:
// asyncio/protocols.py: BaseProtocol, Protocol, BufferedProtocol, DatagramProtocol).
//
// A protocol is shared-owned (std::shared_ptr): the protocol factory passed to
// create_connection()/create_server() makes one per connection, the transport keeps a reference
// to it until connection_lost() has returned, and the caller may keep its own. Callbacks run on
// the loop's thread, from the loop: never from inside a transport method the protocol called,
// except pause_writing(), which write() and set_write_buffer_limits() call at once when the
// buffer goes above the high-water mark (as Python does, so that a drain right after a write
// sees it). The order: connection_made, then any number of data_received/buffer_updated and
// pause_writing/resume_writing, then at most one eof_received, then connection_lost exactly once
// (Python's state machine). An exception escaping a callback goes to the loop's exception
// handler and the transport is closed (Python: _fatal_error).
#pragma once

#include <cstddef>
#include <exception>
#include <span>
#include <string_view>

namespace asyncio {

class Transport;
class DatagramTransport;
class SocketAddress;

/// Python: asyncio.BaseProtocol
class BaseProtocol {
 public:
  BaseProtocol() = default;
  BaseProtocol(const BaseProtocol&) = default;
  BaseProtocol& operator=(const BaseProtocol&) = default;
  virtual ~BaseProtocol() = default;

  /// The connection is closed: `exc` is null for a regular close or end of file, else the
  /// error (an OSError such as ConnectionResetError). Called exactly once.
  /// Python: connection_lost(exc)
  // NOLINTNEXTLINE(performance-unnecessary-value-param): by value, an override may keep it
  virtual void connection_lost(std::exception_ptr exc) { (void)exc; }
  /// The transport's write buffer went above its high-water mark. Python: pause_writing()
  virtual void pause_writing() {}
  /// The write buffer drained to its low-water mark. Python: resume_writing()
  virtual void resume_writing() {}
};

/// A stream protocol that receives data as views of the transport's read buffer (valid only
/// during the call: copy what you keep). Python: asyncio.Protocol
class Protocol : public BaseProtocol {
 public:
  /// The connection is up; `transport` stays valid at least until connection_lost() returns
  /// (keep `transport.shared_from_this()` to hold it longer). Python: connection_made(transport)
  /// (Python declares it on BaseProtocol; here each kind of protocol gets its own kind of
  /// transport, so it is declared on Protocol and BufferedProtocol.)
  virtual void connection_made(Transport& transport) { (void)transport; }
  /// Bytes arrived. Python: data_received(data)
  virtual void data_received(std::string_view data) { (void)data; }
  /// The peer closed its side (end of file). Return true to keep the connection half-open
  /// (you may still write, then close()); false closes the transport. Python: eof_received()
  virtual bool eof_received() { return false; }
};

/// A stream protocol that lends the transport its own memory to receive into: no copy, and on
/// the io_uring engine the kernel writes straight into it. Python: asyncio.BufferedProtocol
class BufferedProtocol : public BaseProtocol {
 public:
  /// As Protocol::connection_made(). Python: connection_made(transport)
  virtual void connection_made(Transport& transport) { (void)transport; }
  /// A non-empty buffer to receive into, at least `sizehint` bytes long if it can. It must stay
  /// valid and untouched until buffer_updated() (or connection_lost()) is called.
  /// Python: get_buffer(sizehint)
  virtual std::span<std::byte> get_buffer(std::size_t sizehint) = 0;
  /// `nbytes` bytes were written at the start of the last buffer returned. Python:
  /// buffer_updated(nbytes)
  virtual void buffer_updated(std::size_t nbytes) = 0;
  /// As Protocol::eof_received(). Python: eof_received()
  virtual bool eof_received() { return false; }
};

/// What a datagram transport (UDP, or a Unix datagram socket) calls: each datagram whole, with
/// its sender's address. Python: asyncio.DatagramProtocol
class DatagramProtocol : public BaseProtocol {
 public:
  /// The endpoint is ready; `transport` stays valid at least until connection_lost() returns.
  /// Python: connection_made(transport)
  virtual void connection_made(DatagramTransport& transport) { (void)transport; }
  /// One datagram arrived from `addr` (a view, valid only during the call). Python:
  /// datagram_received(data, addr)
  virtual void datagram_received(std::string_view data, const SocketAddress& addr) {
    (void)data;
    (void)addr;
  }
  /// A send or receive failed (an OSError: ConnectionRefusedError when an ICMP "port
  /// unreachable" came back for a connected endpoint...); the transport stays open.
  /// Python: error_received(exc)
  // NOLINTNEXTLINE(performance-unnecessary-value-param): by value, an override may keep it
  virtual void error_received(std::exception_ptr exc) { (void)exc; }
};

}  // namespace asyncio
