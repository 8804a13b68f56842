// Finding a stage of a job record by name in gateway tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "imginterp/v1/bus.pb.h"

namespace imginterp::gateway::test_util {

// The stage called `name`; a missing stage fails the test (and returns the first stage).
inline const v1::StageRecord& StageOf(const v1::JobRecord& record, const std::string& name) {
  for (const v1::StageRecord& stage : record.stages()) {
    if (stage.name() == name) return stage;
  }
  ADD_FAILURE() << "no stage " << name;
  return record.stages(0);
}

}  // namespace imginterp::gateway::test_util
