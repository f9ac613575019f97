# Every public header compiles on its own: one generated translation unit per header under
# include/ (the header included twice, which also checks its include guard), built as the
# object library asyncio_header_check whenever the tests are built (so every CI build runs it).
file(GLOB_RECURSE _asyncio_public_headers CONFIGURE_DEPENDS
  RELATIVE ${PROJECT_SOURCE_DIR}/include
  ${PROJECT_SOURCE_DIR}/include/asyncio.hpp ${PROJECT_SOURCE_DIR}/include/asyncio/*.hpp)
list(FILTER _asyncio_public_headers EXCLUDE REGEX "^asyncio/detail/")
set(_asyncio_header_units)
foreach(header IN LISTS _asyncio_public_headers)
  string(MAKE_C_IDENTIFIER ${header} stem)
  set(unit ${CMAKE_BINARY_DIR}/header_check/${stem}.cpp)
  file(CONFIGURE OUTPUT ${unit}
    CONTENT "// Generated: ${header} compiles on its own.\n#include <${header}>\n#include <${header}>\n")
  list(APPEND _asyncio_header_units ${unit})
endforeach()
add_library(asyncio_header_check OBJECT ${_asyncio_header_units})
target_link_libraries(asyncio_header_check PRIVATE asyncio::asyncio)
asyncio_set_warnings(asyncio_header_check)
