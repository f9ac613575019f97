// The non-template engines of gather, wait_for, shield, wait and as_completed
// (Python: tasks.py, _GatheringFuture, wait_for, _wait, shield, as_completed).
#include "asyncio/composition.hpp"

#include <cassert>
#include <coroutine>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/detail/frame_alloc.hpp"
#include "asyncio/detail/future_state.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"

namespace asyncio::detail {
namespace {

/// Marks a future's exception retrieved when it completes, then deletes itself.
class RetrieveOnDone final : public Waiter, public PoolAllocated {
 public:
  void on_future_done(FutureStateBase& f) noexcept override {
    if (!f.cancelled()) (void)f.exception();  // cannot throw: done and not cancelled
    delete this;
  }
  void on_abandon() noexcept override { delete this; }
};

/// The running task, checked to run on `st`'s loop. Python: "Task got Future attached to a
/// different loop".
TaskState& awaiting_task(FutureStateBase* st, const char* what) {
  TaskState& task = running_task(what);
  if (st != nullptr && st->core_ptr() != task.core_ptr()) {
    throw RuntimeError("Task got Future attached to a different loop");
  }
  return task;
}

}  // namespace

void retrieve_when_done(FutureStateBase* st) noexcept {
  if (st->done()) {
    if (!st->cancelled()) (void)st->exception();
    return;
  }
  try {
    st->add_waiter(new RetrieveOnDone);
  } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: a spurious warning at worst
  }
}

// ---- gather ------------------------------------------------------------------------------------

static_assert(sizeof(GatherState) % alignof(GatherState::Slot) == 0);

namespace {
std::size_t gather_bytes(std::size_t n) {
  return sizeof(GatherState) + n * sizeof(GatherState::Slot);
}
}  // namespace

GatherState* GatherState::create(std::size_t n, bool return_exceptions) {
  // The slots are constructed one by one in set_child(), in order.
  void* mem = frame_alloc(gather_bytes(n));
  return new (mem) GatherState(n, return_exceptions);
}

void GatherState::destroy(GatherState* st) noexcept {
  const std::size_t n = st->n_;
  Slot* slots = st->slots();
  for (std::size_t i = 0; i < st->constructed_; ++i) {
    Slot& s = slots[i];
    s.child->remove_waiter(&s);
    // Python keeps _done_callback registered: a child finishing after the gather completed
    // still has its exception marked retrieved.
    if (st->done_ && !s.child->done()) retrieve_when_done(s.child);
    s.child->release();
    s.~Slot();
  }
  st->~GatherState();
  frame_free(st, gather_bytes(n));
}

void GatherState::set_child(std::size_t i, Child child) {
  FutureStateBase* st = child.state.get();
  if (i > 0 && st->core_ptr() != slots()[0].child->core_ptr()) {
    throw ValueError(
        "The future belongs to a different loop than the one specified as the loop "
        "argument");
  }
  Slot& s = *new (&slots()[i]) Slot();
  constructed_ = i + 1;
  s.owner = this;
  s.owned = child.owned;
  s.child = child.state.leak();
  if (st->done()) {
    on_child_done(s);
  } else {
    st->add_waiter(&s);
  }
}

void GatherState::Slot::on_future_done(FutureStateBase& /*f*/) noexcept {
  owner->on_child_done(*this);
}

void GatherState::on_child_done(Slot& s) noexcept {
  ++finished_;
  FutureStateBase& child = *s.child;
  // The gather takes the child's outcome over: with return_exceptions, Python's _done_callback
  // reads every child's exception once all are done; here it is marked now, so that a gather
  // whose awaiter is cancelled before it reads the outcomes reports nothing.
  child.mark_retrieved();
  if (done_) return;
  if (!return_exceptions_) {
    if (child.cancelled()) {
      // A child cancelled on its own: the gather fails with CancelledError but is not itself
      // cancelled, so that one child's cancellation does not cancel its siblings.
      error_ = child.make_cancelled_error();
      complete();
      return;
    }
    if (std::exception_ptr e = child.exception()) {
      error_ = std::move(e);
      complete();
      return;
    }
  }
  if (finished_ < n_) return;
  if (cancel_requested_) {
    // Python issue 32684: a cancelled gather propagates CancelledError even with
    // return_exceptions (the message is that of the last child, as in Python).
    error_ = slots()[n_ - 1].child->make_cancelled_error();
  }
  complete();
}

void GatherState::complete() noexcept {
  done_ = true;
  if (parent_ != nullptr) parent_->wake();
}

bool GatherState::cancel(const std::string& msg) {
  if (done_) return false;
  bool any = false;
  for (std::size_t i = 0; i < constructed_; ++i) {
    // A plain future completes (and may complete the gather) inside cancel(); keep going:
    // Python cancels every child.
    if (slots()[i].child->cancel(msg)) any = true;
  }
  if (any) cancel_requested_ = true;
  return any;
}

bool GatherState::await_ready() {
  if (awaited_) throw RuntimeError("gather() awaitable awaited twice");
  awaited_ = true;
  return done_;
}

void GatherState::await_suspend(std::coroutine_handle<> h) {
  TaskState& task = awaiting_task(n_ > 0 ? slots()[0].child : nullptr, "await gather()");
  parent_ = &task;
  task.park(h, this);
}

void GatherState::check_result() {
  if (parent_ != nullptr) parent_->resume_check();
  if (error_) std::rethrow_exception(error_);
}

void GatherState::awaited_futures(std::vector<FutureStateBase*>& out) const {
  for (std::size_t i = 0; i < constructed_; ++i) {
    if (!slots()[i].child->done()) out.push_back(slots()[i].child);
  }
}

// ---- wait_for ----------------------------------------------------------------------------------

WaitForCore::~WaitForCore() {
  assert(!queued_ && "wait_for: destroyed while its time-out entry was queued");
  inner_->remove_waiter(this);
  if (in_heap()) inner_->core().remove_timer(this);
}

void WaitForCore::suspend(std::coroutine_handle<> h) {
  TaskState& task = awaiting_task(inner_, "wait_for()");
  parent_ = &task;
  inner_->add_waiter(this);
  if (timeout_ > 0) {
    inner_->core().add_timer(this, inner_->core().time() + timeout_);
  }
  task.park(h, this);  // may forward a pending cancellation at once (cancel_wait)
  if (timeout_ <= 0 && !resolved_ && phase_ == Phase::waiting) {
    // Python: a time-out <= 0 cancels a pending awaitable at once and waits for it.
    phase_ = Phase::timed_out;
    inner_->cancel({});
  }
}

void WaitForCore::on_future_done(FutureStateBase& f) noexcept {
  f.mark_retrieved();  // handed to the awaiter (Python 3.12 awaits it: Task.__wakeup)
  resolved_ = true;
  if (in_heap()) inner_->core().remove_timer(this);
  if (!queued_) parent_->wake();  // else run() wakes it: the queued entry must run first
}

bool WaitForCore::cancel_wait(const std::string& msg) {
  if (resolved_) return false;  // too late to forward: delivered as CancelledError on resume
  phase_ = Phase::forwarded;
  if (in_heap()) inner_->core().remove_timer(this);
  return inner_->cancel(msg);  // the inner's completion wakes the parent
}

void WaitForCore::on_timer() noexcept {
  // Decide from the ready queue, after what the deadline set in motion (see the class).
  queued_ = true;
  inner_->core().ready().push(this);
}

void WaitForCore::run() {
  queued_ = false;
  if (resolved_) {
    parent_->wake();
    return;
  }
  switch (phase_) {
    case Phase::waiting:
      // Hop 1 ran after what was due when the deadline's iteration began; hop 2 runs after
      // what that iteration scheduled (see the class comment).
      phase_ = Phase::deadline;
      queued_ = true;
      inner_->core().ready().push(this);
      return;
    case Phase::deadline:
      phase_ = Phase::timed_out;
      inner_->cancel({});  // the inner's completion wakes the parent (maybe right now)
      return;
    case Phase::timed_out:
    case Phase::forwarded:
      return;  // the inner's completion wakes the parent
  }
}

void WaitForCore::finish() {
  if (parent_ != nullptr) parent_->resume_check();
  if (phase_ == Phase::timed_out && inner_->cancelled()) {
    throw_timeout_from(inner_->make_cancelled_error());  // the inner's CancelledError is its cause
  }
  inner_->throw_if_not_result();
}

// ---- shield ------------------------------------------------------------------------------------

void ShieldCore::suspend(std::coroutine_handle<> h) {
  (void)awaiting_task(inner_, "shield()");
  inner_->add_waiter(this);
  park_running(h, "shield()");
}

void ShieldCore::on_cancel() noexcept {
  inner_->remove_waiter(this);
  retrieve_when_done(inner_);  // Python's _inner_done_callback marks it retrieved
}

// ---- wait --------------------------------------------------------------------------------------

WaitCore::WaitCore(std::vector<FutureStateBase*> futures, std::optional<double> timeout,
                   ReturnWhen when)
    : futures_(std::move(futures)), timeout_(timeout), when_(when) {}

WaitCore::~WaitCore() {
  detach();
}

bool WaitCore::ready() {
  std::size_t done = 0;
  for (FutureStateBase* f : futures_) {
    if (!f->done()) continue;
    ++done;
    if (when_ == ReturnWhen::first_completed) return true;
    if (when_ == ReturnWhen::first_exception && !f->cancelled() && f->exception()) return true;
  }
  return done == futures_.size();
}

void WaitCore::suspend(std::coroutine_handle<> h) {
  (void)awaiting_task(futures_.front(), "wait()");
  nodes_ = std::make_unique<Node[]>(futures_.size());
  for (std::size_t i = 0; i < futures_.size(); ++i) {
    if (futures_[i]->done()) continue;
    nodes_[i].owner = this;
    futures_[i]->add_waiter(&nodes_[i]);
    ++pending_;
  }
  if (timeout_) {
    LoopCore& core = futures_.front()->core();
    core.add_timer(this, core.time() + *timeout_);
  }
  park_running(h, "wait()");
}

void WaitCore::Node::on_future_done(FutureStateBase& f) noexcept {
  owner->on_done(f);
}

void WaitCore::on_done(FutureStateBase& f) noexcept {
  --pending_;
  // Python's _on_completion (FIRST_EXCEPTION looks at the exception, marking it retrieved).
  if (pending_ == 0 || when_ == ReturnWhen::first_completed ||
      (when_ == ReturnWhen::first_exception && !f.cancelled() && f.exception())) {
    if (in_heap()) f.core().remove_timer(this);
    wake_up();
  }
}

void WaitCore::detach() noexcept {
  // Once: after finish() the caller may have dropped the handles that kept the futures alive
  // (`(void)co_await wait(std::move(tasks))`), so the destructor must not touch them again.
  if (nodes_) {
    for (std::size_t i = 0; i < futures_.size(); ++i) futures_[i]->remove_waiter(&nodes_[i]);
    nodes_.reset();
  }
  if (in_heap()) futures_.front()->core().remove_timer(this);
}

void WaitCore::finish() {
  detach();
  resume_check();
}

void WaitCore::awaited_futures(std::vector<FutureStateBase*>& out) const {
  for (FutureStateBase* f : futures_) {
    if (!f->done()) out.push_back(f);
  }
}

// ---- as_completed ------------------------------------------------------------------------------

AsCompletedCore::AsCompletedCore(LoopCore& loop, std::vector<Child> children,
                                 std::optional<double> timeout)
    : loop_(loop), children_(std::move(children)) {
  for (const Child& c : children_) {
    if (c.state->core_ptr() != &loop_) {
      throw ValueError("The future belongs to a different loop than the running loop");
    }
  }
  nodes_ = std::make_unique<Node[]>(children_.size());
  for (std::size_t i = 0; i < children_.size(); ++i) {
    FutureStateBase* st = children_[i].state.get();
    ++todo_;
    nodes_[i].owner = this;
    nodes_[i].index = i;
    if (st->done()) {
      nodes_[i].on_future_done(*st);  // Python's callback would run soon: queue it now
    } else {
      st->add_waiter(&nodes_[i]);
    }
  }
  if (todo_ > 0 && timeout) {
    loop_.add_timer(this, loop_.time() + *timeout);
  }
}

AsCompletedCore::~AsCompletedCore() {
  for (std::size_t i = 0; i < children_.size(); ++i) {
    children_[i].state->remove_waiter(&nodes_[i]);
  }
  if (in_heap()) loop_.remove_timer(this);
}

void AsCompletedCore::Node::on_future_done(FutureStateBase& /*f*/) noexcept {
  // Python's _on_completion: todo.remove(f); done.put_nowait(f)
  if (--owner->todo_ == 0 && owner->in_heap()) owner->loop_.remove_timer(owner);
  owner->push(static_cast<std::ptrdiff_t>(index));
}

void AsCompletedCore::on_timer() noexcept {
  // Python's _on_timeout: every future still to do becomes a TimeoutError for one consumer.
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (!nodes_[i].linked()) continue;
    children_[i].state->remove_waiter(&nodes_[i]);
    --todo_;
    push(-1);
  }
}

void AsCompletedCore::push(std::ptrdiff_t item) noexcept {
  try {
    queue_.push_back(item);
  } catch (...) {
    std::terminate();  // out of memory inside a completion: nothing sane to do
  }
  wake_next();
}

std::ptrdiff_t AsCompletedCore::pop() noexcept {
  const std::ptrdiff_t item = queue_.front();
  queue_.pop_front();
  return item;
}

void AsCompletedCore::wake_next() noexcept {
  while (ListHook* h = getters_.pop_front()) {
    if (static_cast<Getter*>(h)->wake_up()) return;
  }
}

void AsCompletedCore::Getter::await_suspend(std::coroutine_handle<> h) {
  park_running(h, "as_completed()");
  if (state() == State::parked) core_->getters_.push_back(this);
}

void AsCompletedCore::Getter::await_resume() {
  try {
    resume_check();
  } catch (...) {
    // Woken for an item but cancelled before taking it: pass the wake-up on (Queue.get).
    if (state() == State::woken && core_->has_item()) core_->wake_next();
    throw;
  }
}

void AsCompletedCore::Getter::on_cancel() noexcept {
  if (ListHook::linked()) IntrusiveList::unlink(this);
}

void AsCompletedCore::Getter::awaited_futures(std::vector<FutureStateBase*>& out) const {
  for (std::size_t i = 0; i < core_->children_.size(); ++i) {
    if (core_->nodes_[i].linked()) out.push_back(core_->children_[i].state.get());
  }
}

}  // namespace asyncio::detail
