// TransactionView: a summary as the client API's Transaction, with the live overlay.

#include <algorithm>

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

}  // namespace

v1::Transaction TransactionView(const v1::TxSummary& summary, const v1::Transaction* live) {
  v1::Transaction tx;
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
