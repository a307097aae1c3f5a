# Run at every build (see CMakeLists.txt, target dc_git_describe): writes the git revision into
# OUT only when it changed, so results record the revision the binary was built from.
execute_process(COMMAND git describe --always --dirty WORKING_DIRECTORY ${SRC} OUTPUT_VARIABLE rev
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR rev STREQUAL "")
  set(rev "unknown")
endif()
set(text "// Generated at build time by cmake/git_describe.cmake.\n#pragma once\n#define DC_GIT_DESCRIBE \"${rev}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
else()
  set(old "")
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
