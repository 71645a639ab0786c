"""One simulated machine per machine class: what `detect_machine` reports there."""
from sr4x.devices import CPU, CPU_BF16, CUDA_OLDER, CUDA_SM80, MPS, Machine

MACHINES = {
    CPU: Machine("cpu", "AMD EPYC", "AVX2", None, 2),
    CPU_BF16: Machine("cpu", "Intel Xeon", "AVX512", "AMX", 2),
    CUDA_SM80: Machine("cuda:0", "AMD EPYC", "AVX2", None, 16, "NVIDIA H200", (9, 0)),
    CUDA_OLDER: Machine("cuda:0", "Intel Xeon", "AVX2", None, 8, "Tesla V100", (7, 0)),
    MPS: Machine("mps", "Apple M2", "DEFAULT", None, 8),
}
