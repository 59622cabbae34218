// Metrics: treaty_tx_total and treaty_tx_duration_seconds by mode and outcome.
#include "coordinator/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace treaty::coordinator {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(MetricsTest, TwoPcAndSagaOutcomesAreCountedByModeAndOutcome) {
  Metrics m(nullptr);
  m.TxFinished(v1::COMMITTED, 5);
  m.TxFinished(v1::COMMITTED, 7);
  m.TxFinished(v1::ABORTED, 9);
  m.SagaFinished(v1::SAGA_COMPLETED, 20);
  m.SagaFinished(v1::SAGA_STUCK, 0);
  m.SagaFinished(v1::SAGA_COMPENSATED, 3000);
  m.SagaFinished(v1::SAGA_RUNNING, 1);  // not an outcome: ignored
  const std::string text = m.Scrape();
  EXPECT_TRUE(Has(text, R"(treaty_tx_total{mode="2pc",outcome="committed"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(treaty_tx_total{mode="2pc",outcome="aborted"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(treaty_tx_total{mode="saga",outcome="completed"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(treaty_tx_total{mode="saga",outcome="compensated"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(treaty_tx_total{mode="saga",outcome="stuck"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(treaty_tx_duration_seconds_count{mode="saga",outcome="compensated"} 1)"))
      << text;
  EXPECT_TRUE(Has(text, R"(treaty_tx_duration_seconds_count{mode="2pc",outcome="committed"} 2)"))
      << text;
  EXPECT_EQ(text.find(R"(treaty_tx_duration_seconds_count{mode="saga",outcome="stuck"})"),
            std::string::npos)
      << "STUCK is not final and has no duration";
}

}  // namespace
}  // namespace treaty::coordinator
