// Task groups: supervising children, aborting on the first failure, and the exit protocol
// (Python: taskgroups.py, TaskGroup._on_task_done / _abort / __aexit__).
#include "asyncio/taskgroups.hpp"

#include <cassert>
#include <coroutine>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/composition.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio::detail {

namespace {
/// A second list hook, so that a child node sits both in its task's waiter list and in the
/// group's list of children.
struct GroupHook : ListHook {};
}  // namespace

/// Supervises one child: a done callback (run from the ready queue one iteration after the
/// child finished, as Python's add_done_callback) and a member of the group's list.
/// States: waiting -> queued -> ran (then deleted); `discard` while queued: the loop closed.
class TaskGroupCore::Child final : public Waiter,
                                   public GroupHook,
                                   public Runnable,
                                   public PoolAllocated {
 public:
  Child(TaskGroupCore* owner, TaskState* child_task) noexcept : group(owner), task(child_task) {}
  void on_future_done(FutureStateBase& /*f*/) noexcept override {
    queued = true;
    detail::core_of(*group->loop_).ready().push(this);
  }
  void run() override {
    queued = false;
    group->on_task_done(*this);  // deletes this
  }
  void discard() noexcept override { queued = false; }  // the group's detach() deletes it
  [[nodiscard]] std::string describe() const override { return "TaskGroup._on_task_done"; }

  TaskGroupCore* group;
  Ref<TaskState> task;
  bool queued = false;
};

/// exit() parked until the last child is done. Python: TaskGroup._on_completed_fut
class TaskGroupCore::CompletionWait final : public ParkedWaiter, public AwaitsFutures {
 public:
  explicit CompletionWait(TaskGroupCore* group) noexcept : group_(group) {}
  CompletionWait(const CompletionWait&) = delete;
  CompletionWait& operator=(const CompletionWait&) = delete;
  ~CompletionWait() {
    if (group_->completion_ == this) group_->completion_ = nullptr;
  }
  [[nodiscard]] bool await_ready() const noexcept { return group_->children_.empty(); }
  void await_suspend(std::coroutine_handle<> h) {
    park_running(h, "TaskGroup");
    if (state() == State::parked) group_->completion_ = this;
  }
  void await_resume() { resume_check(); }
  void awaited_futures(std::vector<FutureStateBase*>& out) const override { group_->children(out); }

 private:
  void on_cancel() noexcept override { group_->completion_ = nullptr; }
  TaskGroupCore* group_;
};

TaskGroupCore::TaskGroupCore(TaskState* parent) noexcept
    : parent_(parent), loop_(parent->loop_ptr()) {}

TaskGroupCore::~TaskGroupCore() {
  assert(children_.empty());
}

TaskGroupCore* TaskGroupCore::enter() {
  TaskState* parent = tls_current_task;
  if (parent == nullptr) throw RuntimeError("TaskGroup cannot determine the parent task");
  return new TaskGroupCore(parent);
}

const char* TaskGroupCore::refusal() const noexcept {
  if (exiting_ && children_.empty()) return "TaskGroup is finished";
  if (aborting_) return "TaskGroup is shutting down";
  return nullptr;
}

void TaskGroupCore::add_child(TaskState* task) {
  auto* child = new Child(this, task);
  task->add_waiter(child);
  children_.push_back(static_cast<GroupHook*>(child));
  ++size_;
}

void TaskGroupCore::children(std::vector<FutureStateBase*>& out) const {
  for (ListHook* h = children_.first(); h != children_.end(); h = h->next) {
    auto* c = static_cast<Child*>(static_cast<GroupHook*>(h));
    if (!c->task->done()) out.push_back(c->task.get());
  }
}

void TaskGroupCore::on_task_done(Child& child) {
  std::unique_ptr<Child> owned(&child);
  IntrusiveList::unlink(static_cast<GroupHook*>(&child));
  --size_;
  if (completion_ != nullptr && children_.empty()) {
    std::exchange(completion_, nullptr)->wake_up();
  }
  TaskState& task = *child.task;
  if (task.cancelled()) return;
  std::exception_ptr exc = task.exception();  // marks it retrieved
  if (!exc) return;
  errors_.push_back(exc);
  if (classify(exc) == ErrorKind::keyboard_interrupt && !base_error_) base_error_ = exc;
  if (parent_ == nullptr || parent_->done()) {
    // Not possible while task_group() waits; kept as Python keeps it.
    ExceptionContext ctx;
    ctx.message = "Task " + task.get_name() +
                  " has errored out but its parent task is already "
                  "completed";
    ctx.exception = exc;
    ctx.task = TaskRef(&task);
    loop_->call_exception_handler(ctx);
    return;
  }
  if (!aborting_ && !parent_cancel_requested_) {
    // A child failed while the body still runs (or waits in exit()):
    //     co_await task_group([](TaskGroup& tg) -> Coro<> { tg.create_task(crash_soon());
    //                                                      co_await sleep(1h); });  // <- here
    // Cancel the body too, but remember that we did: exit() undoes this one cancellation
    // (uncancel), so that it never escapes the group as CancelledError.
    abort();
    parent_cancel_requested_ = true;
    parent_->cancel({});
  }
}

void TaskGroupCore::abort() {
  aborting_ = true;
  for (ListHook* h = children_.first(); h != children_.end(); h = h->next) {
    TaskState& t = *static_cast<Child*>(static_cast<GroupHook*>(h))->task;
    if (!t.done()) t.cancel({});
  }
}

Coro<void> TaskGroupCore::exit(std::exception_ptr body_error) {
  exiting_ = true;
  const ErrorKind kind = classify(body_error);
  if (kind == ErrorKind::keyboard_interrupt && !base_error_) base_error_ = body_error;
  std::exception_ptr propagate_cancel = kind == ErrorKind::cancelled ? body_error : nullptr;
  if (body_error && !aborting_) {
    // The body failed, or the awaiting task is being cancelled while the body awaited:
    //     co_await task_group([](TaskGroup& tg) -> Coro<> { tg.create_task(child());
    //                                                      co_await sleep(1h); });  // <- here
    // Cancel the children, wait for every one, then rethrow.
    abort();
  }
  // A loop, because the wait can be cancelled again and again (each time the awaiting task is
  // cancelled while we wait for children that take their time to finish cancelling).
  std::exception_ptr pending_cancel;
  while (!children_.empty()) {
    std::exception_ptr cancelled;
    try {
      co_await CompletionWait(this);
    } catch (const CancelledError&) {
      cancelled = std::current_exception();
    }
    if (cancelled) {
      pending_cancel = cancelled;
      if (!aborting_) {
        // The awaiting task was cancelled while the children still ran:
        //     co_await task_group([](TaskGroup& tg) -> Coro<> { tg.create_task(child()); });
        //     //                                      ^ cancelled here, in exit()
        propagate_cancel = cancelled;
        abort();
      }
    }
  }
  TaskState* parent = std::exchange(parent_, nullptr);
  if (base_error_) {
    report_suppressed();
    std::rethrow_exception(base_error_);
  }
  if (parent_cancel_requested_) {
    // We cancelled the parent ourselves: undo exactly that request.
    if (withdraw_cancel(*parent) == 0) {
      propagate_cancel = nullptr;
    } else if (!propagate_cancel) {
      propagate_cancel = pending_cancel;  // the remaining cancellation is not ours: keep it
    }
  }
  // CancelledError propagates, unless there are errors: those have priority.
  if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);
  if (body_error && kind != ErrorKind::cancelled) errors_.push_back(body_error);
  if (!errors_.empty()) {
    if (parent->cancelling() > 0) {
      // Cancelled from outside the group as well: keep that request pending, delivered at the
      // parent's next suspension point (uncancel + cancel keeps the count stable).
      withdraw_cancel(*parent);
      parent->cancel({});
    }
    throw ExceptionGroup("unhandled errors in a TaskGroup", std::exchange(errors_, {}));
  }
}

void TaskGroupCore::report_suppressed() noexcept {
  // gh-135736: the other errors would be lost behind the KeyboardInterrupt; report them.
  for (const std::exception_ptr& e : errors_) {
    if (e == base_error_) continue;
    ExceptionContext ctx;
    try {
      ctx.message =
          "TaskGroup task exception was not propagated because the TaskGroup body is being "
          "closed with a BaseException";
    } catch (...) {  // NOLINT(bugprone-empty-catch)
    }
    ctx.exception = e;
    loop_->call_exception_handler(ctx);
  }
}

void TaskGroupCore::detach() noexcept {
  parent_ = nullptr;
  exiting_ = true;
  while (ListHook* h = children_.pop_front()) {
    auto* c = static_cast<Child*>(static_cast<GroupHook*>(h));
    assert(!c->queued && "a group's done callback outlived its task_group() frame");
    c->task->remove_waiter(c);
    delete c;
    --size_;
  }
}

}  // namespace asyncio::detail
