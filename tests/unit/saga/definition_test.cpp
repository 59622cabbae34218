// Saga definitions: the JSON form, validation rules with their messages, and the step graph.
#include "saga/definition.h"

#include <gtest/gtest.h>

#include <string>

namespace treaty::saga {
namespace {

constexpr char kOrder[] = R"({
  "xid": "order-42",
  "max_compensation_attempts": 7,
  "steps": [
    {"id": "reserve", "service": "inventory", "action": "reserve", "compensation": "release",
     "payload": {"sku": "A1", "qty": 2}},
    {"id": "charge", "service": "payment", "action": "charge", "compensation": "refund",
     "after": ["reserve"], "timeout_ms": 3000, "key": "customer-7",
     "retry": {"max_attempts": 5, "initial_backoff_ms": 50, "max_backoff_ms": 1000}},
    {"id": "ship", "service": "shipping", "action": "schedule", "compensation": "cancel",
     "after": ["charge"]}
  ]})";

// The message of a refused saga text, or "" if it was accepted.
std::string ErrorOf(const std::string& json) {
  Result<ParsedSaga> parsed = ParseSagaJson(json);
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << json;
  return parsed.status().message();
}

std::string OneStep(const std::string& extra) {
  return R"({"steps": [{"id": "a", "service": "s", "action": "do", "compensation": "undo")" +
         extra + "}]}";
}

TEST(ParseSagaJsonTest, ParsesEveryField) {
  Result<ParsedSaga> parsed = ParseSagaJson(kOrder);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->xid, "order-42");
  const v1::SagaDefinition& def = parsed->definition;
  EXPECT_EQ(def.max_compensation_attempts(), 7u);
  ASSERT_EQ(def.steps_size(), 3);
  EXPECT_EQ(def.steps(0).payload(), R"({"qty":2,"sku":"A1"})") << "payload is compact JSON text";
  const v1::SagaStep& charge = def.steps(1);
  EXPECT_EQ(charge.service(), "payment");
  EXPECT_EQ(charge.compensation(), "refund");
  ASSERT_EQ(charge.after_size(), 1);
  EXPECT_EQ(charge.after(0), "reserve");
  EXPECT_EQ(charge.timeout_ms(), 3000u);
  EXPECT_EQ(charge.routing_key(), "customer-7");
  EXPECT_EQ(charge.retry().max_attempts(), 5u);
  EXPECT_EQ(charge.retry().initial_backoff_ms(), 50u);
  EXPECT_EQ(charge.retry().max_backoff_ms(), 1000u);
  EXPECT_TRUE(def.steps(2).payload().empty()) << "no payload: empty bytes";
}

TEST(ParseSagaJsonTest, ErrorsNameTheStepAndField) {
  EXPECT_NE(ErrorOf("{").find("malformed JSON"), std::string::npos);
  EXPECT_NE(ErrorOf("[]").find("JSON object"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"steps": []})").find("empty"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"stepz": []})").find("unknown field \"stepz\""), std::string::npos);
  EXPECT_NE(
      ErrorOf(OneStep(R"(, "retries": 3)")).find("unknown field \"retries\" in step 1 (\"a\")"),
      std::string::npos)
      << ErrorOf(OneStep(R"(, "retries": 3)"));
  EXPECT_NE(ErrorOf(R"({"steps": [{"id": "a", "service": "s", "action": "do"}]})")
                .find("step 1 (\"a\") needs a \"compensation\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(OneStep(R"(, "timeout_ms": -1)")).find("\"timeout_ms\""), std::string::npos);
  EXPECT_NE(ErrorOf(OneStep(R"(, "retry": {"max_attempts": 1000})")).find("max_attempts"),
            std::string::npos);
  EXPECT_NE(ErrorOf(OneStep(R"(, "retry": {"tries": 1})")).find("unknown field \"tries\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(OneStep(R"(, "after": "b")")).find("array of step ids"), std::string::npos);
  EXPECT_NE(ErrorOf(OneStep(R"(, "key": 5)")).find("\"key\""), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"xid": 5, "steps": []})").find("\"xid\""), std::string::npos);
}

TEST(ParseSagaJsonTest, ValidationRunsOnTheParsedSaga) {
  const std::string cyclic = R"({"steps": [
    {"id": "a", "service": "s", "action": "x", "compensation": "y", "after": ["c"]},
    {"id": "b", "service": "s", "action": "x", "compensation": "y", "after": ["a"]},
    {"id": "c", "service": "s", "action": "x", "compensation": "y", "after": ["b"]}]})";
  EXPECT_NE(ErrorOf(cyclic).find("a -> c -> b -> a"), std::string::npos) << ErrorOf(cyclic);
}

v1::SagaDefinition Steps(std::initializer_list<const char*> ids) {
  v1::SagaDefinition def;
  for (const char* id : ids) {
    v1::SagaStep* step = def.add_steps();
    step->set_id(id);
    step->set_service("svc");
    step->set_action("do");
    step->set_compensation("undo");
  }
  return def;
}

std::string Invalid(const v1::SagaDefinition& def) {
  Status s = Validate(def);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "expected a refusal";
  return s.message();
}

TEST(ValidateTest, AcceptsAValidDag) { EXPECT_TRUE(Validate(Steps({"a", "b"})).ok()); }

TEST(ValidateTest, RefusesEmptyAndOversizedSagas) {
  EXPECT_NE(Invalid(v1::SagaDefinition()).find("no steps"), std::string::npos);
  v1::SagaDefinition big;
  for (size_t i = 0; i <= kMaxSteps; ++i) *big.add_steps() = Steps({"x"}).steps(0);
  EXPECT_NE(Invalid(big).find("too many steps: 65"), std::string::npos);
}

TEST(ValidateTest, RefusesBadAndDuplicateIds) {
  EXPECT_NE(Invalid(Steps({""})).find("needs an \"id\""), std::string::npos);
  EXPECT_NE(Invalid(Steps({"a b"})).find("may only use"), std::string::npos);
  EXPECT_NE(Invalid(Steps({"a", "a"})).find("already used by step 1"), std::string::npos);
  EXPECT_NE(Invalid(Steps({std::string(kMaxStepIdBytes + 1, 'x').c_str()})).find("longer"),
            std::string::npos);
}

TEST(ValidateTest, RefusesMissingServiceActionOrCompensation) {
  v1::SagaDefinition def = Steps({"a"});
  def.mutable_steps(0)->clear_service();
  EXPECT_NE(Invalid(def).find("step 1 (\"a\") needs a \"service\""), std::string::npos);
  def = Steps({"a"});
  def.mutable_steps(0)->clear_action();
  EXPECT_NE(Invalid(def).find("\"action\""), std::string::npos);
  def = Steps({"a"});
  def.mutable_steps(0)->clear_compensation();
  EXPECT_NE(Invalid(def).find("\"compensation\""), std::string::npos);
}

TEST(ValidateTest, RefusesBadDependencies) {
  v1::SagaDefinition unknown = Steps({"a", "b"});
  unknown.mutable_steps(1)->add_after("zz");
  EXPECT_NE(Invalid(unknown).find("unknown step \"zz\""), std::string::npos);
  v1::SagaDefinition self = Steps({"a"});
  self.mutable_steps(0)->add_after("a");
  EXPECT_NE(Invalid(self).find("the step itself"), std::string::npos);
  v1::SagaDefinition twice = Steps({"a", "b"});
  twice.mutable_steps(1)->add_after("a");
  twice.mutable_steps(1)->add_after("a");
  EXPECT_NE(Invalid(twice).find("twice"), std::string::npos);
  v1::SagaDefinition cycle = Steps({"a", "b", "c"});
  cycle.mutable_steps(0)->add_after("b");
  cycle.mutable_steps(1)->add_after("a");
  EXPECT_NE(Invalid(cycle).find("cycle: a -> b -> a"), std::string::npos) << Invalid(cycle);
}

TEST(ValidateTest, RefusesOversizedPayloadsAndOutOfRangeSettings) {
  v1::SagaDefinition def = Steps({"a"});
  def.mutable_steps(0)->set_payload(std::string(kMaxPayloadBytes + 1, 'p'));
  EXPECT_NE(Invalid(def).find("\"payload\" is 65537 bytes"), std::string::npos);
  def = Steps({"a"});
  def.mutable_steps(0)->set_timeout_ms(kMaxTimeoutMs + 1);
  EXPECT_NE(Invalid(def).find("\"timeout_ms\""), std::string::npos);
  def = Steps({"a"});
  def.mutable_steps(0)->mutable_retry()->set_initial_backoff_ms(500);
  def.mutable_steps(0)->mutable_retry()->set_max_backoff_ms(100);
  EXPECT_NE(Invalid(def).find("below"), std::string::npos);
  def = Steps({"a"});
  def.set_max_compensation_attempts(kMaxCompensationAttemptsLimit + 1);
  EXPECT_NE(Invalid(def).find("max_compensation_attempts"), std::string::npos);
  def = Steps({"a"});
  def.mutable_steps(0)->mutable_retry()->set_initial_backoff_ms(5000);
  EXPECT_TRUE(Validate(def).ok()) << "an unset max backoff never sits below the initial one";
}

TEST(StepGraphTest, OrdersStepsAfterTheirDependenciesAndReversesForCompensation) {
  v1::SagaDefinition def = Steps({"ship", "charge", "reserve", "notify"});
  def.mutable_steps(0)->add_after("charge");
  def.mutable_steps(1)->add_after("reserve");
  Result<StepGraph> graph = BuildGraph(def);
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  EXPECT_EQ(graph->order, (std::vector<uint32_t>{2, 1, 0, 3}))
      << "reserve, charge, ship; notify is independent (ties in definition order)";
  EXPECT_EQ(CompensationOrder(*graph), (std::vector<uint32_t>{3, 0, 1, 2}));
  EXPECT_EQ(graph->deps[0], (std::vector<uint32_t>{1}));
  EXPECT_EQ(graph->dependents[2], (std::vector<uint32_t>{1}));
}

TEST(StepSettingsTest, DefaultsApplyToUnsetFields) {
  v1::SagaStep step;
  EXPECT_EQ(TimeoutMs(step), kDefaultTimeoutMs);
  EXPECT_EQ(MaxActionAttempts(step), kDefaultMaxAttempts);
  EXPECT_EQ(BackoffPolicy(step).initial_backoff_ms, kDefaultInitialBackoffMs);
  EXPECT_EQ(BackoffPolicy(step).max_backoff_ms, kDefaultMaxBackoffMs);
  EXPECT_EQ(MaxCompensationAttempts(v1::SagaDefinition()), kDefaultMaxCompensationAttempts);
  step.set_timeout_ms(9);
  EXPECT_EQ(TimeoutMs(step), 9u);
}

}  // namespace
}  // namespace treaty::saga
