# Included into llama-cpp-python's top-level project (CMAKE_PROJECT_llama_cpp_INCLUDE) when syneg builds
# its llama.cpp wheel with GGML_BACKEND_DL and GGML_CPU_ALL_VARIANTS: ggml then builds the CPU backend
# once per instruction-set level, and syneg.llm.cpu_backend loads the best one this CPU supports at run
# time, so one wheel serves the AVX2-only EPYC, the AVX-512/VNNI/BF16 EPYC and the AMX Xeon alike.
#
# llama-cpp-python installs only a target named ggml-cpu into its package, so the variants
# (ggml-cpu-<level>) are installed here, once the whole tree is configured (a deferred call). The AMX
# level (sapphirerapids) is built, since ggml depends on every variant, but not installed: ggml picks
# it from CPUID alone, and a sandbox that does not grant AMX to the process crashed in
# ggml_backend_amx_mul_mat. zen4 (AVX-512 VBMI/VNNI/BF16) serves that Xeon instead.
set(SYNEG_CPU_VARIANTS x64 sse42 sandybridge ivybridge piledriver haswell skylakex cannonlake cascadelake
    icelake cooperlake zen4 alderlake)

function(syneg_install_cpu_variants)
    foreach(level IN LISTS SYNEG_CPU_VARIANTS)
        if(NOT TARGET ggml-cpu-${level})
            message(FATAL_ERROR "syneg: ggml did not define the CPU variant ggml-cpu-${level}")
        endif()
        set_target_properties(ggml-cpu-${level} PROPERTIES INSTALL_RPATH "$ORIGIN" BUILD_WITH_INSTALL_RPATH TRUE)
        install(TARGETS ggml-cpu-${level} LIBRARY DESTINATION ${SKBUILD_PLATLIB_DIR}/llama_cpp/lib)
    endforeach()
    message(STATUS "syneg: CPU variants installed into llama_cpp/lib: ${SYNEG_CPU_VARIANTS}")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL syneg_install_cpu_variants)
