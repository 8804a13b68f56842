// The one RETURN_IF_ERROR / ASSIGN_OR_RETURN pair of the project.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define IMGINTERP_CONCAT_INNER_(a, b) a##b
#define IMGINTERP_CONCAT_(a, b) IMGINTERP_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define IMGINTERP_RETURN_IF_ERROR(expr)                    \
  do {                                                     \
    ::absl::Status imginterp_status_ = (expr);             \
    if (!imginterp_status_.ok()) return imginterp_status_; \
  } while (0)

// `lhs` = value of the StatusOr `rexpr`, or returns its status from the enclosing function.
#define IMGINTERP_ASSIGN_OR_RETURN(lhs, rexpr) \
  IMGINTERP_ASSIGN_OR_RETURN_IMPL_(IMGINTERP_CONCAT_(imginterp_statusor_, __LINE__), lhs, rexpr)

#define IMGINTERP_ASSIGN_OR_RETURN_IMPL_(var, lhs, rexpr) \
  auto var = (rexpr);                                     \
  if (!var.ok()) return std::move(var).status();          \
  lhs = std::move(var).value()
