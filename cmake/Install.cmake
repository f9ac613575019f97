# Install rules: headers, the library, the CMake package and a pkg-config file.
#
#   cmake --install build --prefix /opt/asyncio
#   find_package(asyncio CONFIG REQUIRED)        # with CMAKE_PREFIX_PATH=/opt/asyncio
#   target_link_libraries(app PRIVATE asyncio::asyncio)
#   pkg-config --cflags --libs asyncio            # with PKG_CONFIG_PATH=/opt/asyncio/<libdir>/pkgconfig
#
# Both files are relocatable: the package finds itself from its own location and asyncio.pc
# uses ${pcfiledir}, so `cmake --install --prefix <anywhere>` works without reconfiguring.
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ASYNCIO_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/asyncio"
  CACHE STRING "Where asyncioConfig.cmake is installed, relative to the prefix")
mark_as_advanced(ASYNCIO_INSTALL_CMAKEDIR)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT asyncio_Development
  FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h" PATTERN "*.ipp")

install(TARGETS asyncio
  EXPORT asyncioTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT asyncio_Runtime
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT asyncio_Runtime
          NAMELINK_COMPONENT asyncio_Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT asyncio_Development)

install(EXPORT asyncioTargets
  NAMESPACE asyncio::
  DESTINATION ${ASYNCIO_INSTALL_CMAKEDIR}
  COMPONENT asyncio_Development)

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/asyncioConfig.cmake.in
  ${PROJECT_BINARY_DIR}/asyncioConfig.cmake
  INSTALL_DESTINATION ${ASYNCIO_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/asyncioConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/asyncioConfig.cmake
  ${PROJECT_BINARY_DIR}/asyncioConfigVersion.cmake
  DESTINATION ${ASYNCIO_INSTALL_CMAKEDIR}
  COMPONENT asyncio_Development)

# ---- pkg-config ----------------------------------------------------------------------------------
# The .pc file carries what asyncio::asyncio propagates in CMake: -std=c++20, the public compile
# definitions, the sanitizer flags, -pthread, and OpenSSL (Requires for a static library, whose
# users must link it too; Requires.private for a shared one).
set(_pc_dir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(ASYNCIO_PC_PREFIX "${CMAKE_INSTALL_PREFIX}") # not relocatable, but correct
  set(ASYNCIO_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(ASYNCIO_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _pc_up "/prefix/${_pc_dir}" "/prefix") # e.g. "../.."
  string(REGEX REPLACE "/$" "" _pc_up "${_pc_up}")
  set(ASYNCIO_PC_PREFIX "\${pcfiledir}/${_pc_up}")
  set(ASYNCIO_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(ASYNCIO_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()

set(ASYNCIO_PC_CFLAGS "-std=c++20")
if(ASYNCIO_TRAMPOLINE)
  string(APPEND ASYNCIO_PC_CFLAGS " -DASYNCIO_TRAMPOLINE=1")
else()
  string(APPEND ASYNCIO_PC_CFLAGS " -DASYNCIO_TRAMPOLINE=0")
endif()
if(NOT ASYNCIO_FRAME_POOL)
  string(APPEND ASYNCIO_PC_CFLAGS " -DASYNCIO_NO_FRAME_POOL=1")
endif()
if(ASYNCIO_HAS_OPENSSL)
  string(APPEND ASYNCIO_PC_CFLAGS " -DASYNCIO_HAS_OPENSSL=1")
endif()
set(ASYNCIO_PC_LIBS_EXTRA "-pthread")
if(ASYNCIO_HAS_LIBURING AND NOT BUILD_SHARED_LIBS)
  string(PREPEND ASYNCIO_PC_LIBS_EXTRA "-luring ")
endif()
if(ASYNCIO_SANITIZE_FLAGS)
  list(JOIN ASYNCIO_SANITIZE_FLAGS " " _pc_san)
  string(APPEND ASYNCIO_PC_CFLAGS " ${_pc_san} -DASYNCIO_SANITIZED=1")
  string(PREPEND ASYNCIO_PC_LIBS_EXTRA "${_pc_san} ")
endif()
set(ASYNCIO_PC_REQUIRES "")
set(ASYNCIO_PC_REQUIRES_PRIVATE "")
if(ASYNCIO_HAS_OPENSSL)
  if(BUILD_SHARED_LIBS)
    set(ASYNCIO_PC_REQUIRES_PRIVATE "openssl")
  else()
    set(ASYNCIO_PC_REQUIRES "openssl")
  endif()
endif()

configure_file(${PROJECT_SOURCE_DIR}/cmake/asyncio.pc.in ${PROJECT_BINARY_DIR}/asyncio.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/asyncio.pc
  DESTINATION ${_pc_dir}
  COMPONENT asyncio_Development)
