#include "coordinator/transactions.h"

#include "saga/saga_core.h"

namespace treaty::coordinator {

v1::Transaction TransactionFromRecord(const v1::TxnRecord& rec) {
  if (rec.mode() == saga::kSagaMode) return saga::TransactionFromSagaRecord(rec);
  v1::Transaction tx;
  tx.set_mode("2pc");
  tx.set_xid(rec.xid());
  tx.set_state(rec.state());
  tx.set_reason(rec.reason());
  tx.set_created_unix_ms(rec.created_unix_ms());
  tx.set_updated_unix_ms(rec.updated_unix_ms());
  bool finished = rec.state() == v1::COMMITTED || rec.state() == v1::ABORTED;
  for (int i = 0; i < rec.branches_size(); ++i) {
    auto* b = tx.add_branches();
    b->set_branch_id(static_cast<uint32_t>(i));
    b->set_service(rec.branches(i).service());
    b->set_op(rec.branches(i).op());
    b->set_instance(rec.branches(i).instance());
    if (i < rec.votes_size()) b->set_vote(rec.votes(i));
    b->set_acknowledged(finished);
  }
  return tx;
}

}  // namespace treaty::coordinator
