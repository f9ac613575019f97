// asyncio/exceptions.hpp - the error types (Python: asyncio/exceptions.py).
//
// Two families, as in Python:
//  * CancelledError and KeyboardInterrupt are "BaseException"s: they do NOT derive from
//    std::exception, so `catch (const std::exception&)` never swallows a cancellation.
//  * Everything else derives from asyncio::Error (a std::runtime_error), so ordinary error
//    handling catches it.
// OS failures are OSErrors: std::system_error carrying the errno as code(), in Python's
// hierarchy (ConnectionError and its kinds, FileNotFoundError, PermissionError), so that
// `catch (const std::system_error&)` still catches them all.
//
// CancelledError, KeyboardInterrupt, Error, TimeoutError, InvalidStateError, RuntimeError and
// ValueError are defined in detail/errors.hpp (the engine below this header throws them).
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "asyncio/detail/errors.hpp"

namespace asyncio {

/// EOF came before the expected number of bytes. Python: asyncio.IncompleteReadError
class IncompleteReadError : public Error {
 public:
  IncompleteReadError(std::string partial, std::optional<std::size_t> expected)
      : Error(describe(partial.size(), expected)),
        partial(std::move(partial)),
        expected(expected) {}
  std::string partial;                  ///< the bytes read before EOF
  std::optional<std::size_t> expected;  ///< how many were wanted (empty: "undefined")

 private:
  static std::string describe(std::size_t got, std::optional<std::size_t> want) {
    return std::to_string(got) + " bytes read on a total of " +
           (want ? std::to_string(*want) : std::string("undefined")) + " expected bytes";
  }
};

/// The separator was not found within the buffer limit. Python: asyncio.LimitOverrunError
class LimitOverrunError : public Error {
 public:
  LimitOverrunError(const std::string& message, std::size_t consumed)
      : Error(message), consumed(consumed) {}
  std::size_t consumed;  ///< how many bytes to consume to get past the overrun
};

/// put_nowait() on a full queue. Python: asyncio.QueueFull
class QueueFull : public Error {
 public:
  QueueFull() : Error("QueueFull") {}
  using Error::Error;
};

/// get_nowait() on an empty queue. Python: asyncio.QueueEmpty
class QueueEmpty : public Error {
 public:
  QueueEmpty() : Error("QueueEmpty") {}
  using Error::Error;
};

/// The queue was shut down. Python 3.13: asyncio.QueueShutDown
class QueueShutDown : public Error {
 public:
  QueueShutDown() : Error("QueueShutDown") {}
  using Error::Error;
};

/// A Barrier was aborted or reset while tasks waited. Python: asyncio.BrokenBarrierError
class BrokenBarrierError : public Error {
 public:
  BrokenBarrierError() : Error("BrokenBarrierError") {}
  using Error::Error;
};

/// Several errors at once (a TaskGroup's children). Python: ExceptionGroup
class ExceptionGroup : public Error {
 public:
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
      : Error(message), exceptions_(std::move(exceptions)) {}
  /// The collected errors, in the order they happened.
  [[nodiscard]] const std::vector<std::exception_ptr>& exceptions() const noexcept {
    return exceptions_;
  }

 private:
  std::vector<std::exception_ptr> exceptions_;
};

/// A system call failed; code() is the errno (std::generic_category()), what() names the
/// operation and the error. Raised through raise_os_error(), which picks the subclass below
/// that matches the errno, as Python does. Python: OSError
class OSError : public std::system_error {
 public:
  OSError(int err, const std::string& what)
      : std::system_error(err, std::generic_category(), what) {}
  /// An error of another category than errno's (ssl::SSLError's).
  OSError(std::error_code code, const std::string& what) : std::system_error(code, what) {}
  /// The errno. Python: OSError.errno
  [[nodiscard]] int errno_value() const noexcept { return code().value(); }
};

/// A connection-related OSError. Python: ConnectionError
class ConnectionError : public OSError {
  using OSError::OSError;
};

/// EPIPE, ESHUTDOWN: writing to a connection the peer has closed. Python: BrokenPipeError
class BrokenPipeError : public ConnectionError {
  using ConnectionError::ConnectionError;
};

/// ECONNABORTED. Python: ConnectionAbortedError
class ConnectionAbortedError : public ConnectionError {
  using ConnectionError::ConnectionError;
};

/// ECONNREFUSED: nobody listens there. Python: ConnectionRefusedError
class ConnectionRefusedError : public ConnectionError {
  using ConnectionError::ConnectionError;
};

/// ECONNRESET: the peer reset the connection. Python: ConnectionResetError
class ConnectionResetError : public ConnectionError {
  using ConnectionError::ConnectionError;
};

/// ENOENT. Python: FileNotFoundError
class FileNotFoundError : public OSError {
  using OSError::OSError;
};

/// EACCES, EPERM. Python: PermissionError
class PermissionError : public OSError {
  using OSError::OSError;
};

/// ESRCH: no such process (a child that has been reaped and whose Process is finished).
/// Python: ProcessLookupError
class ProcessLookupError : public OSError {
  using OSError::OSError;
};

namespace ssl {

/// The category of SSLError codes: OpenSSL's SSL_ERROR_* values (1: SSL_ERROR_SSL, a protocol
/// or verification failure; 8: EOF in violation of the protocol), as Python's SSLError.errno.
const std::error_category& ssl_category() noexcept;

/// A TLS failure: a handshake that failed, a peer that spoke something else than TLS, a
/// certificate or key that does not load. what() carries OpenSSL's reason as Python prints it
/// ("[SSL: WRONG_VERSION_NUMBER] wrong version number"). Python: ssl.SSLError
class SSLError : public OSError {
 public:
  SSLError(int code, const std::string& what, std::string library = {}, std::string reason = {})
      : OSError(std::error_code(code, ssl_category()), what),
        library_(std::move(library)),
        reason_(std::move(reason)) {}
  /// The OpenSSL library that failed ("SSL", "PEM", "X509"...). Python: SSLError.library
  [[nodiscard]] const std::string& library() const noexcept { return library_; }
  /// OpenSSL's reason, upper-case ("CERTIFICATE_VERIFY_FAILED"). Python: SSLError.reason
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  std::string library_;
  std::string reason_;
};

/// The peer's certificate did not verify (unknown CA, self-signed, expired, wrong host name).
/// Python: ssl.SSLCertVerificationError
class SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(const std::string& what, long verify_code, std::string verify_message)
      : SSLError(1, what, "SSL", "CERTIFICATE_VERIFY_FAILED"),
        verify_code_(verify_code),
        verify_message_(std::move(verify_message)) {}
  /// OpenSSL's X509_V_ERR_* code. Python: verify_code
  [[nodiscard]] long verify_code() const noexcept { return verify_code_; }
  /// Its text ("self-signed certificate", "Hostname mismatch..."). Python: verify_message
  [[nodiscard]] const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  long verify_code_;
  std::string verify_message_;
};

}  // namespace ssl

/// Throws the OSError subclass that matches `err` (as Python maps an errno to a subclass of
/// OSError; errnos without a subclass of their own give a plain OSError), with what() =
/// "`what`: strerror(err)".
[[noreturn]] void raise_os_error(int err, const std::string& what);
/// The same error as an exception_ptr, for code that completes a future with it.
std::exception_ptr make_os_error(int err, const std::string& what);

}  // namespace asyncio
