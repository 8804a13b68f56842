# One precompiled LibTorch header for every target that includes LibTorch.
#
# Parsing the LibTorch headers costs 30-60 s of one core; CMake's default, one precompiled header
# per target, parsed them once per target (~17 times in a clean build). With
# IMGINTERP_SHARED_TORCH_PCH (the default) every target reuses one header built once. GCC uses a
# precompiled header only when the macros it depends on are defined the same way (-Winvalid-pch
# reports a mismatch). The LibTorch headers read NOMINMAX, which some abseil targets define for
# their users, so with sharing on every target defines it (it only matters on Windows); the
# other definitions consumers add (paths, GTEST_*) are not read by the LibTorch headers.
option(IMGINTERP_SHARED_TORCH_PCH
       "Build one LibTorch precompiled header for all targets (off: one per target)" ON)

if(IMGINTERP_SHARED_TORCH_PCH)
  target_compile_definitions(imginterp_options INTERFACE NOMINMAX)
  file(WRITE "${CMAKE_BINARY_DIR}/imginterp_torch_pch.cc"
       "// Carrier of the shared LibTorch precompiled header (cmake/ImginterpTorchPch.cmake).\n")
  add_library(imginterp_torch_pch OBJECT "${CMAKE_BINARY_DIR}/imginterp_torch_pch.cc")
  target_include_directories(imginterp_torch_pch SYSTEM PRIVATE ${TORCH_INCLUDE_DIRS})
  target_link_libraries(imginterp_torch_pch PRIVATE imginterp::options ${TORCH_LIBRARIES})
  target_precompile_headers(imginterp_torch_pch PRIVATE <torch/torch.h> <torch/script.h>)
endif()

# imginterp_use_torch_pch(<target> <header>): the shared header, or `header` precompiled for
# the target alone when sharing is off.
function(imginterp_use_torch_pch target header)
  if(IMGINTERP_SHARED_TORCH_PCH)
    target_precompile_headers(${target} REUSE_FROM imginterp_torch_pch)
  else()
    target_precompile_headers(${target} PRIVATE ${header})
  endif()
endfunction()
