// TransactionView: a summary as the client API's Transaction, with the live overlay.

#include <algorithm>

#include "readmodel/fold.h"
#include "readmodel/readmodel.h"

namespace treaty::readmodel {
namespace {

// How far along a state is: PREPARING < COMMITTING/ABORTING < COMMITTED/ABORTED.
int Progress(v1::TxState state) {
  switch (state) {
    case v1::PREPARING:
      return 1;
    case v1::COMMITTING:
    case v1::ABORTING:
      return 2;
    case v1::COMMITTED:
    case v1::ABORTED:
      return 3;
    default:
      return 0;
  }
}

// The saga state a saga summary's TxState stands for (STUCK shows as COMPENSATING).
v1::SagaState SagaStateOf(v1::TxState state) {
  switch (state) {
    case v1::ABORTING:
      return v1::SAGA_COMPENSATING;
    case v1::COMMITTED:
      return v1::SAGA_COMPLETED;
    case v1::ABORTED:
      return v1::SAGA_COMPENSATED;
    default:
      return v1::SAGA_RUNNING;
  }
}

// A saga summary's view without its stored saga view: steps from the branches (no ids,
// compensations or step states), the saga state from the summary's state.
v1::Transaction SagaFromSummary(const v1::TxSummary& summary) {
  v1::Transaction tx;
  tx.set_saga_state(SagaStateOf(summary.state()));
  for (const v1::BranchStatus& b : summary.branches()) {
    v1::StepStatus* step = tx.add_steps();
    step->set_service(b.service());
    step->set_action(b.op());
    step->set_attempts(b.attempts());
    step->set_last_error(b.last_error());
  }
  return tx;
}

}  // namespace

namespace internal {

v1::Transaction SagaTransactionView(const v1::TxSummary& summary, const v1::Transaction* saga) {
  if (summary.mode() != kModeSaga) return TransactionView(summary, nullptr);
  v1::Transaction tx = saga != nullptr ? *saga : SagaFromSummary(summary);
  tx.set_xid(summary.xid());
  tx.set_mode(kModeSaga);
  tx.set_state(v1::TX_STATE_UNSPECIFIED);
  tx.clear_branches();
  tx.set_reason(summary.reason());
  tx.set_created_unix_ms(summary.created_unix_ms());
  tx.set_updated_unix_ms(summary.updated_unix_ms());
  return tx;
}

}  // namespace internal

v1::Transaction TransactionView(const v1::TxSummary& summary, const v1::Transaction* saga,
                                const v1::Transaction* live) {
  if (summary.mode() != internal::kModeSaga) return TransactionView(summary, live);
  v1::Transaction tx = internal::SagaTransactionView(summary, saga);
  if (live == nullptr) return tx;
  // The live view holds what the log has and what is not durable yet.
  tx.set_saga_state(live->saga_state());
  *tx.mutable_steps() = live->steps();
  if (!live->reason().empty()) tx.set_reason(live->reason());
  tx.set_updated_unix_ms(std::max(summary.updated_unix_ms(), live->updated_unix_ms()));
  return tx;
}

v1::Transaction TransactionView(const v1::TxSummary& summary, const v1::Transaction* live) {
  if (summary.mode() == internal::kModeSaga) return TransactionView(summary, nullptr, live);
  v1::Transaction tx;
  tx.set_mode(summary.mode().empty() ? internal::kMode2pc : summary.mode());
  tx.set_xid(summary.xid());
  tx.set_state(summary.state());
  tx.set_reason(summary.reason());
  tx.set_created_unix_ms(summary.created_unix_ms());
  tx.set_updated_unix_ms(summary.updated_unix_ms());
  *tx.mutable_branches() = summary.branches();
  if (live == nullptr) return tx;

  if (Progress(live->state()) > Progress(summary.state())) {
    tx.set_state(live->state());
    if (!live->reason().empty()) tx.set_reason(live->reason());
  }
  tx.set_updated_unix_ms(std::max(summary.updated_unix_ms(), live->updated_unix_ms()));
  for (const v1::BranchStatus& l : live->branches()) {
    if (static_cast<int>(l.branch_id()) >= tx.branches_size()) continue;
    v1::BranchStatus* b = tx.mutable_branches(static_cast<int>(l.branch_id()));
    if (b->vote() == v1::VOTE_UNSPECIFIED) b->set_vote(l.vote());
    b->set_acknowledged(b->acknowledged() || l.acknowledged());
    b->set_attempts(l.attempts());
    b->set_last_error(l.last_error());
    if (!l.instance().empty()) b->set_instance(l.instance());
  }
  return tx;
}

}  // namespace treaty::readmodel
