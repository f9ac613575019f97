// Classifying exceptions for the runtime's own decisions (src side of exceptions.hpp).
#include "asyncio/exceptions.hpp"

#include <exception>
#include <string>

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

}  // namespace asyncio::detail
