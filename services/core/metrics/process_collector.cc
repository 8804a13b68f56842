#include "services/core/metrics/process_collector.h"

#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "prometheus/metric_family.h"

namespace imginterp::metrics {
namespace {

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fields of /proc/self/stat after the command name, which is in parentheses and may itself
// hold spaces or ')': fields[0] is the state (field 3 in proc(5)), so field n is fields[n - 3].
std::vector<std::string> StatFields() {
  const std::string stat = ReadFile("/proc/self/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  return absl::StrSplit(absl::string_view(stat).substr(close + 1), ' ', absl::SkipEmpty());
}

double Field(const std::vector<std::string>& fields, int proc5_index) {
  const size_t i = static_cast<size_t>(proc5_index - 3);
  double value = 0;
  if (i < fields.size() && absl::SimpleAtod(fields[i], &value)) return value;
  return 0;
}

// Seconds since the epoch at which the machine booted ("btime" in /proc/stat).
double BootTime() {
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/stat"), '\n')) {
    double value = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &value)) return value;
  }
  return 0;
}

int OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // The descriptor of the listing itself.
}

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void AddSample(prometheus::MetricFamily& family,
               std::vector<prometheus::ClientMetric::Label> labels, double value) {
  prometheus::ClientMetric sample;
  sample.label = std::move(labels);
  if (family.type == prometheus::MetricType::Counter) {
    sample.counter.value = value;
  } else {
    sample.gauge.value = value;
  }
  family.metric.push_back(std::move(sample));
}

}  // namespace

// The few NVML entry points used, resolved from libnvidia-ml.so.1 at start (it ships with the
// driver, not with CUDA, so it is present on every GPU node and absent elsewhere).
class ProcessCollector::Nvml {
 public:
  struct Memory {
    unsigned long long total, free, used;  // NOLINT: nvmlMemory_t's layout.
  };
  using Device = void*;

  static std::unique_ptr<Nvml> Open() {
    void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) return nullptr;
    auto nvml = std::unique_ptr<Nvml>(new Nvml(library));
    if (!nvml->Resolve() || nvml->init_() != 0) return nullptr;
    nvml->initialised_ = true;
    return nvml;
  }

  ~Nvml() {
    if (initialised_) shutdown_();
    dlclose(library_);
  }

  // Used and total bytes of each device NVML sees.
  std::vector<std::pair<Memory, unsigned>> DeviceMemory() const {
    std::vector<std::pair<Memory, unsigned>> devices;
    unsigned count = 0;
    if (count_(&count) != 0) return devices;
    for (unsigned i = 0; i < count; ++i) {
      Device device = nullptr;
      Memory memory{};
      if (handle_(i, &device) == 0 && memory_(device, &memory) == 0) {
        devices.emplace_back(memory, i);
      }
    }
    return devices;
  }

 private:
  explicit Nvml(void* library) : library_(library) {}

  template <typename Fn>
  bool Load(Fn*& fn, const char* name) {
    fn = reinterpret_cast<Fn*>(dlsym(library_, name));
    return fn != nullptr;
  }
  bool Resolve() {
    return Load(init_, "nvmlInit_v2") && Load(shutdown_, "nvmlShutdown") &&
           Load(count_, "nvmlDeviceGetCount_v2") &&
           Load(handle_, "nvmlDeviceGetHandleByIndex_v2") &&
           Load(memory_, "nvmlDeviceGetMemoryInfo");
  }

  void* const library_;
  bool initialised_ = false;
  // NVML returns 0 (NVML_SUCCESS) on success.
  int (*init_)() = nullptr;
  int (*shutdown_)() = nullptr;
  int (*count_)(unsigned*) = nullptr;
  int (*handle_)(unsigned, Device*) = nullptr;
  int (*memory_)(Device, Memory*) = nullptr;
};

ProcessCollector::ProcessCollector(std::string service)
    : service_(std::move(service)), nvml_(Nvml::Open()) {}

ProcessCollector::~ProcessCollector() = default;

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::ClientMetric::Label> labels;
  if (!service_.empty()) labels.push_back({"service", service_});
  const std::vector<std::string> stat = StatFields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  using prometheus::MetricType;

  std::vector<prometheus::MetricFamily> families;
  auto add = [&](const char* name, const char* help, MetricType type, double value) {
    families.push_back(Family(name, help, type));
    AddSample(families.back(), labels, value);
  };
  add("process_cpu_seconds_total", "User and system CPU time spent by the process, in seconds.",
      MetricType::Counter, (Field(stat, 14) + Field(stat, 15)) / ticks);
  add("process_resident_memory_bytes", "Resident memory size of the process, in bytes.",
      MetricType::Gauge, Field(stat, 24) * page);
  add("process_virtual_memory_bytes", "Virtual memory size of the process, in bytes.",
      MetricType::Gauge, Field(stat, 23));
  add("process_open_fds", "Open file descriptors of the process.", MetricType::Gauge, OpenFds());
  add("process_threads", "Threads of the process.", MetricType::Gauge, Field(stat, 20));
  add("process_start_time_seconds", "Start time of the process, in seconds since the Unix epoch.",
      MetricType::Gauge, BootTime() + Field(stat, 22) / ticks);

  if (nvml_ != nullptr) {
    auto used = Family("imginterp_gpu_memory_used_bytes",
                       "Memory in use on the CUDA device (by all processes), in bytes, from NVML.",
                       MetricType::Gauge);
    auto total = Family("imginterp_gpu_memory_total_bytes",
                        "Memory of the CUDA device, in bytes, from NVML.", MetricType::Gauge);
    for (const auto& [memory, index] : nvml_->DeviceMemory()) {
      auto device_labels = labels;
      device_labels.push_back({"device", std::to_string(index)});
      AddSample(used, device_labels, static_cast<double>(memory.used));
      AddSample(total, device_labels, static_cast<double>(memory.total));
    }
    if (!used.metric.empty()) {
      families.push_back(std::move(used));
      families.push_back(std::move(total));
    }
  }
  return families;
}

}  // namespace imginterp::metrics
