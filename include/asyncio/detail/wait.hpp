// Internal: the engines of wait() and as_completed() (asyncio/composition.hpp); the type-erased
// parts are implemented in src/composition.cpp. ReturnWhen, a public name documented with
// wait() in composition.hpp, is defined here because the engine takes it.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "asyncio/detail/awaitables.hpp"
#include "asyncio/detail/errors.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/intrusive.hpp"
#include "asyncio/detail/loop_core.hpp"
#include "asyncio/detail/runnable.hpp"
#include "asyncio/detail/task_state.hpp"

namespace asyncio {

/// When wait() returns. Python: FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED
enum class ReturnWhen { first_completed, first_exception, all_completed };

}  // namespace asyncio

namespace asyncio::detail {

/// The engine of wait(): one Waiter per future, a timer, the awaiting task parked on itself.
class WaitCore final : public ParkedWaiterOn<TimerNode>, public AwaitsFutures {
 public:
  WaitCore(std::vector<FutureStateBase*> futures, std::optional<double> timeout, ReturnWhen when);
  WaitCore(const WaitCore&) = delete;
  WaitCore& operator=(const WaitCore&) = delete;
  ~WaitCore();

  /// True when the condition already holds (no need to suspend).
  bool ready();
  void suspend(std::coroutine_handle<> h);
  void finish();
  void on_timer() noexcept override { wake_up(); }
  void awaited_futures(std::vector<FutureStateBase*>& out) const override;

 private:
  class Node final : public Waiter {
   public:
    void on_future_done(FutureStateBase& f) noexcept override;
    WaitCore* owner = nullptr;
  };
  void on_done(FutureStateBase& f) noexcept;
  void detach() noexcept;
  void on_cancel() noexcept override { detach(); }

  std::vector<FutureStateBase*> futures_;
  std::unique_ptr<Node[]> nodes_;
  std::size_t pending_ = 0;
  std::optional<double> timeout_;
  ReturnWhen when_;
};

/// Shared by an as_completed() range and the coroutines it yields: completed futures queue up
/// in completion order (-1 marks the time-out); consumers wait in FIFO order and re-check on
/// wake-up (never take delivery). Python: as_completed's `done` Queue and `todo` set.
class AsCompletedCore final : public TimerNode {
 public:
  AsCompletedCore(LoopCore& loop, std::vector<Child> children, std::optional<double> timeout);
  AsCompletedCore(const AsCompletedCore&) = delete;
  AsCompletedCore& operator=(const AsCompletedCore&) = delete;
  ~AsCompletedCore();
  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  [[nodiscard]] std::size_t size() const noexcept { return children_.size(); }
  [[nodiscard]] bool has_item() const noexcept { return !queue_.empty(); }
  /// The next completed child's index, or -1 after the time-out.
  std::ptrdiff_t pop() noexcept;
  [[nodiscard]] const Child& child(std::size_t i) const noexcept { return children_[i]; }

  /// Parks the awaiting task until an item is queued. idle -> parked -> {woken | cancelled}
  class Getter final : public ParkedWaiter, public ListHook, public AwaitsFutures {
   public:
    explicit Getter(AsCompletedCore* core) noexcept : core_(core) {}
    Getter(const Getter&) = delete;
    Getter& operator=(const Getter&) = delete;
    ~Getter() {
      if (ListHook::linked()) IntrusiveList::unlink(this);
    }
    [[nodiscard]] bool await_ready() const noexcept { return core_->has_item(); }
    void await_suspend(std::coroutine_handle<> h);
    void await_resume();
    void awaited_futures(std::vector<FutureStateBase*>& out) const override;

   private:
    void on_cancel() noexcept override;
    AsCompletedCore* core_;
  };
  Getter next_item() noexcept { return Getter(this); }

  void on_timer() noexcept override;

 private:
  class Node final : public Waiter {
   public:
    void on_future_done(FutureStateBase& f) noexcept override;
    AsCompletedCore* owner = nullptr;
    std::size_t index = 0;
  };
  void push(std::ptrdiff_t item) noexcept;
  void wake_next() noexcept;

  LoopCore& loop_;
  std::uint32_t refs_ = 0;
  std::vector<Child> children_;
  std::unique_ptr<Node[]> nodes_;
  std::size_t todo_ = 0;
  std::deque<std::ptrdiff_t> queue_;
  IntrusiveList getters_;
};

/// One element of as_completed(): the next result in completion order. Python: _wait_for_one
template <class T>
Coro<T> wait_for_one(Ref<AsCompletedCore> core) {
  while (!core->has_item()) co_await core->next_item();
  const std::ptrdiff_t i = core->pop();
  if (i < 0) throw TimeoutError();
  const Child& c = core->child(static_cast<std::size_t>(i));
  c.state->throw_if_not_result();
  if constexpr (!std::is_void_v<T>) co_return take_result<T>(c.state.get(), c.owned);
}

}  // namespace asyncio::detail
