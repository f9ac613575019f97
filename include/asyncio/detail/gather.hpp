// Internal: the engine of gather() (asyncio/composition.hpp): one block holding the state of
// a gather and one waiter slot per child; type-erased, implemented in src/composition.cpp.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/detail/awaitables.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/task_state.hpp"

namespace asyncio::detail {

// ---- gather ------------------------------------------------------------------------------------

/// The state of one gather() call: a header and one Slot per child, in one allocation.
/// States: pending -> done (first error, or every child finished); never back.
/// Python: _GatheringFuture and gather's _done_callback.
class GatherState final : public WaitTarget, public AwaitsFutures {
 public:
  /// Waits on one child; knows its index by its place in the array.
  class Slot final : public Waiter {
   public:
    void on_future_done(FutureStateBase& f) noexcept override;
    GatherState* owner = nullptr;
    FutureStateBase* child = nullptr;  // a reference is held
    bool owned = false;
  };

  static GatherState* create(std::size_t n, bool return_exceptions);
  static void destroy(GatherState* st) noexcept;

  /// Adds child `i`; children are added in order, 0 first. ValueError if it belongs to another
  /// loop than child 0.
  void set_child(std::size_t i, Child child);
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  [[nodiscard]] Slot& slot(std::size_t i) noexcept { return slots()[i]; }
  [[nodiscard]] bool done() const noexcept { return done_; }

  /// Cancels every child; true if any could be. Python: _GatheringFuture.cancel(msg)
  bool cancel(const std::string& msg);
  bool cancel_wait(const std::string& msg) override { return cancel(msg); }

  bool await_ready();
  void await_suspend(std::coroutine_handle<> h);
  /// After completion: delivers a pending cancellation, or rethrows the error that completed the
  /// gather (the first child error, or CancelledError when the gather itself was cancelled).
  void check_result();

  void awaited_futures(std::vector<FutureStateBase*>& out) const override;

 private:
  GatherState(std::size_t n, bool return_exceptions) noexcept
      : n_(n), return_exceptions_(return_exceptions) {}
  Slot* slots() noexcept { return reinterpret_cast<Slot*>(this + 1); }
  const Slot* slots() const noexcept { return reinterpret_cast<const Slot*>(this + 1); }
  void on_child_done(Slot& s) noexcept;
  void complete() noexcept;

  std::size_t n_;
  std::size_t constructed_ = 0;  // slots [0, constructed_) are live (set_child goes in order)
  std::size_t finished_ = 0;
  TaskState* parent_ = nullptr;  // the parked awaiter
  std::exception_ptr error_;
  bool return_exceptions_;
  bool cancel_requested_ = false;
  bool done_ = false;
  bool awaited_ = false;
};

/// What gather() returns before the result type is known: owns the state.
class GatherHandle {
 public:
  GatherHandle() noexcept = default;
  explicit GatherHandle(GatherState* st) noexcept : st_(st) {}
  GatherHandle(GatherHandle&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
  GatherHandle& operator=(GatherHandle&& o) noexcept {
    if (this != &o) {
      reset();
      st_ = std::exchange(o.st_, nullptr);
    }
    return *this;
  }
  GatherHandle(const GatherHandle&) = delete;
  GatherHandle& operator=(const GatherHandle&) = delete;
  ~GatherHandle() { reset(); }

  /// True once the result (or the error) is known. Python: Future.done()
  [[nodiscard]] bool done() const noexcept { return st_ == nullptr || st_->done(); }
  /// Cancels every child still running; false when the gather is done or no child could be
  /// cancelled. Python: _GatheringFuture.cancel(msg)
  bool cancel(const std::string& msg = {}) { return st_ != nullptr && st_->cancel(msg); }

  [[nodiscard]] bool await_ready() { return st_ == nullptr || st_->await_ready(); }
  void await_suspend(std::coroutine_handle<> h) { st_->await_suspend(h); }

  /// Internal.
  [[nodiscard]] GatherState* state() const noexcept { return st_; }

 private:
  void reset() noexcept {
    if (st_ != nullptr) GatherState::destroy(std::exchange(st_, nullptr));
  }
  GatherState* st_ = nullptr;
};

template <class... A>
GatherState* gather_children(bool return_exceptions, GatherHandle& owner, A&&... aws) {
  owner = GatherHandle(GatherState::create(sizeof...(A), return_exceptions));
  std::size_t i = 0;
  (owner.state()->set_child(i++, to_child(std::forward<A>(aws))), ...);  // left to right
  return owner.state();
}

}  // namespace asyncio::detail
