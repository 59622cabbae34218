#include "coordinator/transactions.h"

#include <fmt/format.h>

#include "common/text.h"
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

v1::Outcome OutcomeOfUsedXid(const log::UsedXid& used) {
  return used.outcome == log::UsedXid::Outcome::kCommitted ? v1::OUTCOME_COMMIT : v1::OUTCOME_ABORT;
}

std::string DescribeUsedXid(std::string_view xid, const log::UsedXid& used) {
  return fmt::format("xid {} was used by a {} transaction that finished at {} ({})", xid,
                     log::UsedXidModeName(used.mode), FormatRfc3339Ms(used.finished_unix_ms),
                     log::UsedXidOutcomeName(used.outcome));
}

Status RefuseUsedXid(const log::EventLog& log, std::string_view xid, int64_t xid_retention_ms) {
  Result<std::optional<log::UsedXid>> used = log.FindUsedXid(xid);
  if (!used.ok()) return used.status();
  if (!used->has_value()) return Status::Ok();
  const std::string window = xid_retention_ms > 0
                                 ? fmt::format("for {} after they finish (--xid-retention)",
                                               FormatDurationMs(xid_retention_ms))
                                 : std::string("forever (--xid-retention 0)");
  return Status::AlreadyExists(fmt::format("{}; xids are remembered {}; use a new xid",
                                           DescribeUsedXid(xid, **used), window));
}

}  // namespace treaty::coordinator
