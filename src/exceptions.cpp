// Classifying exceptions for the runtime's own decisions (src side of exceptions.hpp).
#include "asyncio/exceptions.hpp"

#include <cerrno>
#include <exception>
#include <string>

namespace asyncio {

namespace {

/// Calls `f` with a value of the OSError subclass Python picks for `err`.
template <class F>
decltype(auto) with_os_error(int err, const std::string& what, F&& f) {
  switch (err) {
    case EPIPE:
    case ESHUTDOWN:
      return f(BrokenPipeError(err, what));
    case ECONNABORTED:
      return f(ConnectionAbortedError(err, what));
    case ECONNREFUSED:
      return f(ConnectionRefusedError(err, what));
    case ECONNRESET:
      return f(ConnectionResetError(err, what));
    case ENOENT:
      return f(FileNotFoundError(err, what));
    case EACCES:
    case EPERM:
      return f(PermissionError(err, what));
    case ESRCH:
      return f(ProcessLookupError(err, what));
    default:
      return f(OSError(err, what));
  }
}

}  // namespace

void raise_os_error(int err, const std::string& what) {
  with_os_error(err, what, [](auto&& e) -> void { throw std::forward<decltype(e)>(e); });
  std::terminate();  // not reached: every branch throws
}

std::exception_ptr make_os_error(int err, const std::string& what) {
  return with_os_error(err, what, [](auto&& e) { return std::make_exception_ptr(e); });
}

const std::error_category& ssl::ssl_category() noexcept {
  class Category final : public std::error_category {
   public:
    [[nodiscard]] const char* name() const noexcept override { return "ssl"; }
    [[nodiscard]] std::string message(int code) const override {
      switch (code) {  // OpenSSL's SSL_ERROR_* values, Python's SSLError errnos
        case 1:
          return "SSL error";
        case 5:
          return "system call failed";
        case 6:
          return "TLS connection closed (close_notify)";
        case 8:
          return "EOF occurred in violation of protocol";
        default:
          return "SSL error " + std::to_string(code);
      }
    }
  };
  static const Category category;
  return category;
}

std::exception_ptr TimeoutError::cause() const noexcept {
  // std::throw_with_nested threw an object derived from both this class and nested_exception.
  if (const auto* nested = dynamic_cast<const std::nested_exception*>(this)) {
    return nested->nested_ptr();
  }
  return nullptr;
}

}  // namespace asyncio

namespace asyncio::detail {

ErrorKind classify(const std::exception_ptr& e) noexcept {
  if (!e) return ErrorKind::none;
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return ErrorKind::cancelled;
  } catch (const KeyboardInterrupt&) {
    return ErrorKind::keyboard_interrupt;
  } catch (...) {
    return ErrorKind::other;
  }
}

std::string cancelled_message(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError& c) {
    return c.message();
  } catch (...) {
    return {};
  }
}

std::string describe(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError& c) {
    return std::string("CancelledError: ") + c.message();
  } catch (const KeyboardInterrupt&) {
    return "KeyboardInterrupt";
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

void throw_timeout_from(const std::exception_ptr& cause) {
  if (!cause) throw TimeoutError();
  try {
    std::rethrow_exception(cause);
  } catch (...) {
    std::throw_with_nested(TimeoutError());  // nests the exception being handled: `cause`
  }
}

}  // namespace asyncio::detail
