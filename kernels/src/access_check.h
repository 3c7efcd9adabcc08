// A testbench's view of the accesses behind a `DEPENDENCE ... dependent = false` claim, never
// synthesised: with EDGEMOE_ACCESS_CHECK defined (kernels/tb), each loop that makes such a claim
// opens a check and reports every m_axi word it reads or writes, and the testbench counts the
// collisions the claim rules out (a word read or written again after an earlier iteration wrote
// it). Without the macro the hooks are empty.
#pragma once

#ifdef EDGEMOE_ACCESS_CHECK
void edgemoe_access_begin();
void edgemoe_access(bool write, const void* buffer, long word);
#define EDGEMOE_ACCESS_BEGIN() edgemoe_access_begin()
#define EDGEMOE_ACCESS(write, buffer, word) edgemoe_access(write, buffer, word)
#else
#define EDGEMOE_ACCESS_BEGIN()
#define EDGEMOE_ACCESS(write, buffer, word)
#endif
