// Classifying exceptions for the runtime's own decisions (src side of exceptions.hpp).
#include "asyncio/exceptions.hpp"

#include <exception>
#include <string>

namespace asyncio {

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
