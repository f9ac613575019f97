// Task steps, completion and cancellation (Python: tasks.py, Task.__step / cancel / uncancel).
#include "asyncio/tasks.hpp"

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/futures.hpp"

namespace asyncio {
namespace detail {

TaskState::TaskState(LoopCore* core, std::coroutine_handle<> root, PromiseBase* promise,
                     std::string* name)
    : FutureStateBase(core), resume_(root) {
  // create_task() allows promises aligned to at most 16 bytes, which sit right after the
  // frame's two function pointers (the registry finds a task from its root frame that way).
  assert(PromiseBase::in_frame(root.address()) == promise);
  const std::uint64_t id = core->next_task_id() & kIdMask;
  id_low_ = static_cast<std::uint32_t>(id);
  id_high_ = static_cast<std::uint16_t>(id >> 32);
  is_task_ = true;
  if (name != nullptr && !name->empty()) set_name(std::move(*name));
  promise->set_task(this);
}

TaskState::~TaskState() {
  // A pending task that has started is never destroyed: the loop holds it until it is done or
  // abandoned. Otherwise resume_ is the root frame, if it still exists.
  assert(holds_root());
  if (resume_) resume_.destroy();
}

bool TaskState::cancel(const std::string& msg) {
  retrieved_ = true;
  if (done()) return false;
  ++extras().cancels;
  set_cancel_message(msg);
  // Leave waiting_on_ set: it may be a task that swallows the cancellation, to be cancelled
  // again by a later request (as in Python).
  if (waiting_on_ != nullptr && waiting_on_->cancel_wait(msg)) return true;
  must_cancel_ = true;
  return true;
}

int TaskState::uncancel() noexcept {
  if (!extras_) return 0;
  if (extras_->cancels > 0) --extras_->cancels;
  return extras_->cancels;
}

std::string TaskState::get_name() const {
  if (extras_ && extras_->named) return extras_->name;
  return "Task-" + std::to_string(id());
}

void TaskState::set_name(std::string name) {
  Extras& e = extras();
  e.name = std::move(name);
  e.named = true;
}

std::string TaskState::describe() const {
  std::string s = "Task '" + get_name() + "'";
  if (const PromiseBase* leaf = this->leaf(); leaf != nullptr && leaf->function != nullptr) {
    s += " in " + function_display_name(leaf->function);
  }
  return s;
}

namespace {
/// Where the text after the last "::" outside <...> and (...) starts.
std::size_t last_component(const std::string& s) {
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '<' || c == '(') ++depth;
    if ((c == '>' || c == ')') && depth > 0) --depth;
    if (depth == 0 && c == ':' && i + 1 < s.size() && s[i + 1] == ':') start = i + 2;
    if (depth == 0 && c == ' ') start = i + 1;  // after the return type
  }
  return start;
}
}  // namespace

std::string function_display_name(const char* recorded) {
  if (recorded == nullptr || *recorded == '\0') return "<coroutine>";
  std::string s(recorded);
  if (const std::size_t with = s.find(" [with "); with != std::string::npos) s.erase(with);
  for (const char* q : {" const", " volatile", " &&", " &", " noexcept"}) {
    const std::string suffix(q);
    if (s.size() > suffix.size() &&
        s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0) {
      s.erase(s.size() - suffix.size());
    }
  }
  if (!s.empty() && s.back() == ')') {  // the parameter list
    int depth = 0;
    for (std::size_t i = s.size(); i-- > 0;) {
      if (s[i] == ')') ++depth;
      if (s[i] == '(' && --depth == 0) {
        s.erase(i);
        break;
      }
    }
  }
  s.erase(0, last_component(s));
  if (s.rfind("<lambda", 0) == 0) return "<lambda>";
  return s;
}

void TaskState::deliver_cancel() {
  must_cancel_ = false;
  throw CancelledError(cancel_message());
}

void TaskState::run() {
  scheduled_ = false;
  if (done()) return;
  Ref<TaskState> keep(this);  // completion drops the loop's reference mid-step
  waiting_on_ = nullptr;
  if (!started_ && must_cancel_) {
    // Cancelled before its first step: the body never runs (Python throws CancelledError into
    // an unstarted coroutine, which closes it at once).
    started_ = true;
    must_cancel_ = false;
    mark_cancelled(cancel_message());  // done: resume_ stays the root, freed with the task
    core_->unregister_task(this);
    return;
  }
  PromiseBase* prev_leaf = std::exchange(tls_leaf, stored_leaf());
  started_ = true;
  TaskState* prev_task = std::exchange(tls_current_task, this);
  // A step never runs inside another frame's synchronous run (see SyncRun), but if one ever
  // did, its frames must not take that run for theirs.
  const SyncRun prev_sync = std::exchange(tls_sync_run, {});
  // The trampoline: awaiters hand the next frame to `next` (detail::transfer_to) and return,
  // so every resume starts from this loop at the same stack depth.
  std::coroutine_handle<> next = resume_;
  std::coroutine_handle<>* prev_next = std::exchange(tls_trampoline, &next);
  while (next) std::exchange(next, {}).resume();
  tls_trampoline = prev_next;
  tls_current_task = prev_task;
  if (!done()) note_leaf(tls_leaf);
  tls_leaf = prev_leaf;
  tls_sync_run = prev_sync;
  if (rethrow_) {
    rethrow_ = false;
    std::rethrow_exception(stored_exception());  // KeyboardInterrupt leaves the loop (Python)
  }
}

void TaskState::on_root_done(std::coroutine_handle<> root, void* result,
                             std::exception_ptr* error) noexcept {
  resume_ = root;  // from now on the task holds its root (the result lives there)
  waiting_on_ = nullptr;
  if (error != nullptr) {
    switch (classify(*error)) {
      case ErrorKind::cancelled:
        must_cancel_ = false;
        mark_cancelled(cancelled_message(*error));
        break;
      case ErrorKind::keyboard_interrupt:
        rethrow_ = true;
        [[fallthrough]];
      default:
        complete(FutureStatus::finished, nullptr, error);
        break;
    }
  } else if (must_cancel_) {
    // Cancelled right before the coroutine returned: the task counts as cancelled (Python).
    must_cancel_ = false;
    mark_cancelled(cancel_message());
  } else {
    finish(result);
  }
  core_->unregister_task(this);
}

namespace {

/// The frame whose PromiseBase is `p`.
std::coroutine_handle<> frame_of(PromiseBase* p) noexcept {
  return std::coroutine_handle<>::from_address(reinterpret_cast<char*>(p) -
                                               PromiseBase::kOffsetInFrame);
}

/// Destroys a pending task's chain of frames from `leaf` out to `root`, one frame at a time, so
/// that a chain of any depth is destroyed without recursion: destroying `root` alone would
/// have each frame's `co_await coro` awaiter destroy the frame it awaits, one native stack
/// frame per level (10,000 levels overflowed under ASan). Innermost first is also the order
/// the recursion had (the awaiter is the last object a frame constructed, so it dies first).
/// Only a chain of Coro frames, each owned by the `co_await coro` awaiter of the next, linked
/// by parent() from `leaf` to `root`, is taken apart this way; anything else (an async
/// generator's frame in the chain, no leaf known) is destroyed from `root` as before. Returns false
/// when it destroyed nothing.
bool destroy_chain_iteratively(PromiseBase* leaf, std::coroutine_handle<> root) noexcept {
  if (leaf == nullptr) return false;
  PromiseBase* top = leaf;
  while (PromiseBase* up = top->parent()) {
    if (!top->owned_by_awaiter()) return false;  // an async generator's frame
    top = up;
  }
  if (frame_of(top).address() != root.address()) return false;
  for (PromiseBase* p = leaf; p != nullptr;) {
    PromiseBase* const next = p->parent();  // read before the frame goes
    const std::coroutine_handle<> frame = frame_of(p);
    frame.destroy();  // its awaiter skips the child destroyed just before
    tls_destroyed_child = frame.address();
    p = next;
  }
  tls_destroyed_child = nullptr;
  return true;
}

}  // namespace

void TaskState::abandon(std::coroutine_handle<> root) noexcept {
  assert(!done());
  PromiseBase* const leaf = stored_leaf();
  resume_ = {};
  waiting_on_ = nullptr;
  leaf_at_resume_ = false;
  if (extras_) extras_->leaf = nullptr;
  // Runs the destructors of every frame in the chain.
  if (!destroy_chain_iteratively(leaf, root)) root.destroy();
  while (ListHook* h = waiters_.pop_front()) static_cast<Waiter*>(h)->on_abandon();
  waiters_.~SlimList();
  status_ = FutureStatus::cancelled;
  try {
    set_cancel_message("event loop closed");
  } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: no message
  }
}

void TaskState::note_leaf(PromiseBase* leaf) noexcept {
  leaf_at_resume_ = leaf != nullptr && resume_ && leaf == PromiseBase::in_frame(resume_.address());
  if (leaf_at_resume_) return;
  // Rare: the task stopped in a frame of another kind (an async generator's, or a user's own
  // coroutine type), or its innermost Coro frame is not the one it resumes at.
  if (extras_ == nullptr && leaf == nullptr) return;
  try {
    extras().leaf = leaf;
  } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: the task tree shows less
  }
}

TaskState& running_task(const char* what) {
  if (TaskState* t = tls_current_task) return *t;
  throw RuntimeError(std::string(what) + ": no running task (await it from a coroutine)");
}

void task_root_done(TaskState* task, std::coroutine_handle<> root, void* result,
                    std::exception_ptr* error) noexcept {
  task->on_root_done(root, result, error);
}

void unsupported_frame_layout() noexcept {
  std::fputs(
      "asyncio: this compiler does not place a coroutine's promise right after the frame's two "
      "function pointers (PromiseBase::kOffsetInFrame); tasks cannot work\n",
      stderr);
  std::abort();
}

void report_never_awaited(const char* function) noexcept {
  EventLoop* loop = tls_running_loop;
  if (loop == nullptr || !loop->get_debug()) return;
  try {
    ExceptionContext ctx;
    ctx.message = "coroutine '" + function_display_name(function) + "' was never awaited";
    loop->call_exception_handler(ctx);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a warning must never throw from a destructor
  }
}

namespace {
/// Stops the loop one iteration after the future completes (Python's
/// _run_until_complete_cb is a done callback, so it runs one iteration later).
class StopWaiter final : public Waiter {
 public:
  explicit StopWaiter(EventLoop& loop) noexcept : loop_(loop) {}
  StopWaiter(const StopWaiter&) = delete;
  StopWaiter& operator=(const StopWaiter&) = delete;
  ~StopWaiter() {
    if (st_ != nullptr) st_->remove_waiter(this);
    handle_.cancel();
  }
  void wait_for(FutureStateBase* st) noexcept {
    st_ = st;
    st->add_waiter(this);
  }
  void on_future_done(FutureStateBase& /*f*/) noexcept override {
    try {
      handle_ = loop_.call_soon([l = &loop_] { l->stop(); });
    } catch (...) {
      loop_.stop();
    }
  }

 private:
  EventLoop& loop_;
  FutureStateBase* st_ = nullptr;
  Handle handle_;
};
}  // namespace

void check_can_run(EventLoop& loop) {
  detail::core_of(loop).check_open();
  if (loop.is_running()) throw RuntimeError("This event loop is already running");
  if (tls_running_loop != nullptr) {
    throw RuntimeError("Cannot run the event loop while another loop is running");
  }
}

void run_until_done(EventLoop& loop, FutureStateBase* st) {
  check_can_run(loop);
  if (st->core_ptr() != &detail::core_of(loop)) {
    throw ValueError("The future belongs to a different loop than the one given");
  }
  StopWaiter waiter(loop);
  if (st->done()) {
    waiter.on_future_done(*st);
  } else {
    waiter.wait_for(st);
  }
  loop.run_forever();
  if (!st->done()) throw RuntimeError("Event loop stopped before Future completed.");
}

}  // namespace detail

TaskRef current_task() noexcept {
  return TaskRef(detail::tls_current_task);
}

std::vector<TaskRef> all_tasks() {
  return detail::tasks_of(get_running_loop());
}

}  // namespace asyncio
