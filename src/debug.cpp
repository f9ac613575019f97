// The task tree (Python 3.14: asyncio/tools.py, `python -m asyncio pstree`): who awaits whom,
// and in which chain of coroutines each task is suspended.
#include "asyncio/debug.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "asyncio/composition.hpp"
#include "asyncio/coroutines.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/events.hpp"
#include "asyncio/task_ref.hpp"

namespace asyncio {
namespace {

using detail::FutureStateBase;
using detail::PromiseBase;
using detail::TaskState;

/// The live tasks that `t` waits for, from what it is parked on.
std::vector<TaskState*> awaited_tasks(const TaskState& t) {
  std::vector<FutureStateBase*> futures;
  detail::WaitTarget* target = t.waiting_on();
  if (target == nullptr) return {};
  if (auto* combinator = dynamic_cast<detail::AwaitsFutures*>(target)) {
    combinator->awaited_futures(futures);
  } else if (auto* future = dynamic_cast<FutureStateBase*>(target)) {
    futures.push_back(future);  // co_await task / future
  }
  std::vector<TaskState*> out;
  for (FutureStateBase* f : futures) {
    if (f->is_task() && !f->done()) out.push_back(static_cast<TaskState*>(f));
  }
  return out;
}

/// The coroutine chain of `t`, outermost first.
std::vector<std::string> frames_of(const TaskState& t) {
  std::vector<std::string> out;
  for (const PromiseBase* p = t.leaf(); p != nullptr; p = p->parent()) {
    out.push_back(detail::function_display_name(p->function));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

class TreePrinter {
 public:
  explicit TreePrinter(const std::vector<TaskRef>& tasks) {
    for (const TaskRef& r : tasks) {
      TaskState* t = r.get();
      order_.push_back(t);
      live_.insert(t);
    }
    for (TaskState* t : order_) {
      for (TaskState* a : awaited_tasks(*t)) {
        if (!live_.contains(a)) continue;
        awaits_[t].push_back(a);
        awaited_.insert(a);
      }
    }
  }

  std::string print() {
    std::vector<TaskState*> roots;
    for (TaskState* t : order_) {
      if (!awaited_.contains(t)) roots.push_back(t);
    }
    emit_children(roots, "");
    // Tasks only reachable through a cycle of awaits (a deadlock): print them as roots too.
    for (TaskState* t : order_) {
      if (!printed_.contains(t)) emit_task(*t, "", true);
    }
    return out_;
  }

 private:
  void emit_children(const std::vector<TaskState*>& tasks, const std::string& prefix) {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      emit_task(*tasks[i], prefix, i + 1 == tasks.size());
    }
  }

  void emit_task(TaskState& t, const std::string& prefix, bool last) {
    out_ += prefix;
    out_ += last ? "└── " : "├── ";
    out_ += "(T) ";
    out_ += t.get_name();
    if (t.cancelling() > 0) out_ += " [cancelling]";
    if (path_.contains(&t)) {
      out_ += " (awaits itself: cycle)\n";
      return;
    }
    out_ += '\n';
    printed_.insert(&t);
    path_.insert(&t);
    std::string p = prefix + (last ? "    " : "│   ");
    for (const std::string& fn : frames_of(t)) {
      out_ += p;
      out_ += "└── ";
      out_ += fn;
      out_ += '\n';
      p += "    ";
    }
    auto it = awaits_.find(&t);
    if (it != awaits_.end()) emit_children(it->second, p);
    path_.erase(&t);
  }

  std::vector<TaskState*> order_;
  std::unordered_set<TaskState*> live_;
  std::unordered_map<TaskState*, std::vector<TaskState*>> awaits_;
  std::unordered_set<TaskState*> awaited_;
  std::unordered_set<TaskState*> printed_;
  std::unordered_set<TaskState*> path_;
  std::string out_;
};

}  // namespace

std::string format_task_tree(EventLoop& loop) {
  return TreePrinter(detail::tasks_of(loop)).print();
}

std::string format_task_tree() {
  return format_task_tree(get_running_loop());
}

void print_task_tree(EventLoop& loop) {
  ExceptionContext ctx;
  ctx.message = "Task tree:\n" + format_task_tree(loop);
  loop.call_exception_handler(ctx);
}

void print_task_tree() {
  print_task_tree(get_running_loop());
}

}  // namespace asyncio
