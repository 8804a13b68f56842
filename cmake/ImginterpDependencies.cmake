# Every dependency comes from Debian 12's packages (deploy/install-deps.sh).
#
# Two Debian quirks decide how they are found: protobuf ships no CMake package config (so the
# FindProtobuf module is used), and the cnats CMake config points at files Debian does not ship
# (so nats.c is found through pkg-config).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(Protobuf REQUIRED)
pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++)
pkg_check_modules(NATS REQUIRED IMPORTED_TARGET libnats)
find_package(absl REQUIRED CONFIG)
find_package(prometheus-cpp REQUIRED CONFIG)
find_package(nlohmann_json REQUIRED CONFIG)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
find_program(GRPC_PYTHON_PLUGIN grpc_python_plugin)
find_library(GRPCPP_REFLECTION_LIBRARY grpc++_reflection REQUIRED)

# LibTorch and OpenCV are needed only by the model-serving libraries and the services; the
# gateway, bus and RPC libraries never see them.
find_package(Torch REQUIRED CONFIG)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs videoio)

set_package_properties(Protobuf PROPERTIES TYPE REQUIRED PURPOSE "messages and gRPC services")
set_package_properties(Torch PROPERTIES TYPE REQUIRED PURPOSE "TorchScript inference")
set_package_properties(OpenCV PROPERTIES TYPE REQUIRED PURPOSE "image codecs and classical maps")
