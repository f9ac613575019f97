# The install test (ctest: install_consumer). Run as
#   cmake -DASYNCIO_BINARY_DIR=<build> -DCONSUMER_SOURCE_DIR=<tests/install/consumer>
#         -DWORK_DIR=<scratch> -DCXX=<compiler> -DGENERATOR=<gen> -DBUILD_TYPE=<config>
#         [-DSHARED=ON] -P run.cmake
# 1. installs the built project into <scratch>/prefix with `cmake --install`;
# 2. configures, builds and runs tests/install/consumer against it (find_package(asyncio CONFIG));
# 3. compiles the same main.cpp by hand with `pkg-config --cflags --libs asyncio` and runs it.
cmake_minimum_required(VERSION 3.25)

foreach(var ASYNCIO_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR CXX GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "install test: ${shown}")
  execute_process(COMMAND ${ARGN} COMMAND_ERROR_IS_FATAL ANY)
endfunction()

# ---- 1. install ----------------------------------------------------------------------------------
run(${CMAKE_COMMAND} --install ${ASYNCIO_BINARY_DIR} --prefix ${prefix} --config ${BUILD_TYPE})
foreach(expected include/asyncio.hpp)
  if(NOT EXISTS ${prefix}/${expected})
    message(FATAL_ERROR "install test: ${prefix}/${expected} was not installed")
  endif()
endforeach()
file(GLOB_RECURSE config_files ${prefix}/*/asyncioConfig.cmake)
file(GLOB_RECURSE pc_files ${prefix}/*/asyncio.pc)
if(NOT config_files OR NOT pc_files)
  message(FATAL_ERROR "install test: asyncioConfig.cmake or asyncio.pc missing under ${prefix}")
endif()
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir ${pc_file} DIRECTORY)
get_filename_component(lib_dir ${pc_dir} DIRECTORY)
if(SHARED)
  set(ENV{LD_LIBRARY_PATH} "${lib_dir}:$ENV{LD_LIBRARY_PATH}")
endif()

# ---- 2. find_package consumer ---------------------------------------------------------------------
set(build ${WORK_DIR}/build)
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DASYNCIO_EXPECTED_PREFIX=${prefix})
run(${CMAKE_COMMAND} --build ${build} --config ${BUILD_TYPE})
set(app ${build}/app)
if(NOT EXISTS ${app})
  set(app ${build}/${BUILD_TYPE}/app) # multi-config generators
endif()
run(${app})

# ---- 3. pkg-config consumer -----------------------------------------------------------------------
find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs asyncio
  OUTPUT_VARIABLE pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
message(STATUS "install test: pkg-config --cflags --libs asyncio -> ${pc_flags}")
string(FIND "${pc_flags}" "-I${prefix}/" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "install test: pkg-config does not point into ${prefix}: ${pc_flags}")
endif()
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
run(${CXX} ${CONSUMER_SOURCE_DIR}/main.cpp ${pc_flags} -o ${WORK_DIR}/app_pkgconfig)
run(${WORK_DIR}/app_pkgconfig)

message(STATUS "install test: find_package and pkg-config consumers built and ran")
