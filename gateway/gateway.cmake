# The gateway: public API, pipelines (DAG) and job state. Links rpc, jobbus, metrics,
# proto_path and common only; never LibTorch or OpenCV.
add_library(imginterp_gateway_lib STATIC
  ${CMAKE_CURRENT_LIST_DIR}/pipeline_registry.cc
  ${CMAKE_CURRENT_LIST_DIR}/job_logic.cc
  ${CMAKE_CURRENT_LIST_DIR}/job_manager.cc
  ${CMAKE_CURRENT_LIST_DIR}/gateway_metrics.cc
  ${CMAKE_CURRENT_LIST_DIR}/consumer_lag_poller.cc
  ${CMAKE_CURRENT_LIST_DIR}/gateway_service.cc)
add_library(imginterp::gateway ALIAS imginterp_gateway_lib)
target_include_directories(imginterp_gateway_lib PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(imginterp_gateway_lib
  PUBLIC
    imginterp::options
    imginterp::common
    imginterp::proto
    imginterp::proto_path
    imginterp::rpc
    imginterp::jobbus
    PkgConfig::GRPCPP
    protobuf::libprotobuf
    prometheus-cpp::core
    absl::status
    absl::statusor
    absl::strings
    absl::str_format
    absl::time)
# Stage requests in the pipelines file are Any messages resolved through the generated
# descriptor pool: imginterp::proto is a shared library, so every message type registers itself
# whether gateway code references it or not.

if(NOT TARGET imginterp::metrics)
  message(WARNING "imginterp::metrics is missing: imginterp-gateway is not built")
  return()
endif()
add_executable(imginterp-gateway ${CMAKE_CURRENT_LIST_DIR}/gateway_main.cc)
target_compile_definitions(imginterp-gateway PRIVATE
  IMGINTERP_GATEWAY_DEFAULT_PIPELINES="${CMAKE_CURRENT_LIST_DIR}/pipelines.pbtxt")
target_link_libraries(imginterp-gateway PRIVATE
  imginterp::options imginterp::gateway imginterp::metrics)
install(TARGETS imginterp-gateway RUNTIME DESTINATION bin)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/pipelines.pbtxt DESTINATION share/imginterp/gateway)
