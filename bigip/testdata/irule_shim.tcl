# irule_shim.tcl: runs a BIG-IP LTM iRule under a stock tclsh (8.6) for tests.
#
# Usage: tclsh irule_shim.tcl RULE_FILE SCRIPT_FILE
#
# SCRIPT_FILE is a Tcl script (written by the Go tests) calling:
#   now SECONDS                    the value of [clock seconds]
#   datagroup PATH {k v k v ...}   define or replace an internal string data group
#   undatagroup PATH               delete a data group
#   pools {PATH ...}               the pools that exist
#   request NAME {HDR VAL ...} ?-method M? ?-uri U? ?-client ADDR?
#                                  run the rule's HTTP_REQUEST for one request on a
#                                  new connection and print one line
#                                  "RESULT {json}"
#   lint                           print "LINT {json}" with static violations
#
# The rule body runs in a fresh safe child interpreter per request, which has
# the iRule commands below (HTTP::*, class, CRYPTO::verify, b64decode, table,
# pool, log, event, getfield, IP::client_addr, a clock with only "seconds" and
# "clicks") and REFUSES what BIG-IP's Tcl 8.4 dialect lacks: dict, lmap, try,
# throw, apply, coroutine, lassign, lrepeat, lreverse, tailcall, zlib, chan,
# "string cat|reverse", "binary encode|decode", "clock milliseconds", and (by
# a static check) {*} expansion and the ** operator. A refused command raises
# an error AND is recorded in the result's "violations", so a rule cannot
# hide it inside catch.
#
# CRYPTO::verify computes a real HMAC-SHA256 (SHA-256 in pure Tcl below).
# b64decode accepts only padded standard base64, as on BIG-IP. The session
# table persists across requests of one run, with timeouts and lifetimes
# evaluated against "now".

namespace eval ::shim {
    variable now 0
    variable clicks 0
    variable datagroups [dict create]
    variable pools [list]
    variable table [dict create]
    variable rulesrc ""
    # per request
    variable headers
    variable req
    variable res
}

# ---------------------------------------------------------------- SHA-256 --

namespace eval ::shim::sha {
    variable K {
        0x428a2f98 0x71374491 0xb5c0fbcf 0xe9b5dba5 0x3956c25b 0x59f111f1 0x923f82a4 0xab1c5ed5
        0xd807aa98 0x12835b01 0x243185be 0x550c7dc3 0x72be5d74 0x80deb1fe 0x9bdc06a7 0xc19bf174
        0xe49b69c1 0xefbe4786 0x0fc19dc6 0x240ca1cc 0x2de92c6f 0x4a7484aa 0x5cb0a9dc 0x76f988da
        0x983e5152 0xa831c66d 0xb00327c8 0xbf597fc7 0xc6e00bf3 0xd5a79147 0x06ca6351 0x14292967
        0x27b70a85 0x2e1b2138 0x4d2c6dfc 0x53380d13 0x650a7354 0x766a0abb 0x81c2c92e 0x92722c85
        0xa2bfe8a1 0xa81a664b 0xc24b8b70 0xc76c51a3 0xd192e819 0xd6990624 0xf40e3585 0x106aa070
        0x19a4c116 0x1e376c08 0x2748774c 0x34b0bcb5 0x391c0cb3 0x4ed8aa4a 0x5b9cca4f 0x682e6ff3
        0x748f82ee 0x78a5636f 0x84c87814 0x8cc70208 0x90befffa 0xa4506ceb 0xbef9a3f7 0xc67178f2
    }
}

# sha256 returns the 32-byte digest of the byte string msg (characters
# U+0000-U+00FF stand for bytes).
proc ::shim::sha::sha256 {msg} {
    variable K
    set len [string length $msg]
    append msg \x80
    append msg [string repeat \x00 [expr {(55 - $len) % 64}]]
    append msg [binary format W [expr {$len * 8}]]
    binary scan $msg Iu* words
    set H {0x6a09e667 0xbb67ae85 0x3c6ef372 0xa54ff53a 0x510e527f 0x9b05688c 0x1f83d9ab 0x5be0cd19}
    set n [llength $words]
    for {set off 0} {$off < $n} {incr off 16} {
        set W [lrange $words $off [expr {$off + 15}]]
        for {set t 16} {$t < 64} {incr t} {
            set x [lindex $W [expr {$t - 15}]]
            set y [lindex $W [expr {$t - 2}]]
            set s0 [expr {((($x >> 7) | ($x << 25)) ^ (($x >> 18) | ($x << 14)) ^ ($x >> 3)) & 0xffffffff}]
            set s1 [expr {((($y >> 17) | ($y << 15)) ^ (($y >> 19) | ($y << 13)) ^ ($y >> 10)) & 0xffffffff}]
            lappend W [expr {([lindex $W [expr {$t - 16}]] + $s0 + [lindex $W [expr {$t - 7}]] + $s1) & 0xffffffff}]
        }
        lassign $H a b c d e f g h
        for {set t 0} {$t < 64} {incr t} {
            set S1 [expr {((($e >> 6) | ($e << 26)) ^ (($e >> 11) | ($e << 21)) ^ (($e >> 25) | ($e << 7))) & 0xffffffff}]
            set ch [expr {($e & $f) ^ (~$e & $g)}]
            set t1 [expr {($h + $S1 + $ch + [lindex $K $t] + [lindex $W $t]) & 0xffffffff}]
            set S0 [expr {((($a >> 2) | ($a << 30)) ^ (($a >> 13) | ($a << 19)) ^ (($a >> 22) | ($a << 10))) & 0xffffffff}]
            set maj [expr {($a & $b) ^ ($a & $c) ^ ($b & $c)}]
            set t2 [expr {($S0 + $maj) & 0xffffffff}]
            set h $g
            set g $f
            set f $e
            set e [expr {($d + $t1) & 0xffffffff}]
            set d $c
            set c $b
            set b $a
            set a [expr {($t1 + $t2) & 0xffffffff}]
        }
        set i 0
        set nh {}
        foreach v [list $a $b $c $d $e $f $g $h] {
            lappend nh [expr {([lindex $H $i] + $v) & 0xffffffff}]
            incr i
        }
        set H $nh
    }
    return [binary format I8 $H]
}

# hmac returns HMAC-SHA256(key, msg), both byte strings (RFC 2104).
proc ::shim::sha::hmac {key msg} {
    if {[string length $key] > 64} {
        set key [sha256 $key]
    }
    append key [string repeat \x00 [expr {64 - [string length $key]}]]
    binary scan $key cu* kb
    set ipad ""
    set opad ""
    foreach b $kb {
        append ipad [format %c [expr {$b ^ 0x36}]]
        append opad [format %c [expr {$b ^ 0x5c}]]
    }
    return [sha256 $opad[sha256 $ipad$msg]]
}

# --------------------------------------------------------- result helpers --

proc ::shim::json {s} {
    set out "\""
    foreach ch [split $s ""] {
        scan $ch %c code
        if {$ch eq "\""} {
            append out "\\\""
        } elseif {$ch eq "\\"} {
            append out "\\\\"
        } elseif {$code < 0x20 || $code > 0x7e} {
            append out [format "\\u%04x" $code]
        } else {
            append out $ch
        }
    }
    append out "\""
}

proc ::shim::jsonlist {l} {
    set parts {}
    foreach s $l {
        lappend parts [json $s]
    }
    return "\[[join $parts ,]\]"
}

# violation records a use of something BIG-IP lacks and raises an error.
proc ::shim::violation {what} {
    variable res
    dict lappend res violations $what
    return -code error "not available in BIG-IP iRules (Tcl 8.4): $what"
}

# ----------------------------------------------------------- iRule: when --

proc ::shim::when {event args} {
    variable req
    if {[llength $args] == 3 && [lindex $args 0] eq "priority"} {
        set body [lindex $args 2]
    } elseif {[llength $args] == 1} {
        set body [lindex $args 0]
    } else {
        return -code error "wrong # args: should be \"when EVENT ?priority N? BODY\""
    }
    dict set req events $event $body
}

# --------------------------------------------------------- iRule: HTTP::* --

proc ::shim::hidx {name} {
    variable headers
    set out {}
    set i 0
    foreach {n v} $headers {
        if {[string equal -nocase $n $name]} {
            lappend out $i
        }
        incr i 2
    }
    return $out
}

proc ::shim::http_header {args} {
    variable headers
    if {[llength $args] == 0} {
        return -code error "wrong # args: HTTP::header"
    }
    set sub [lindex $args 0]
    switch -- $sub {
        value - values - count - exists - remove - names - insert - replace - at - is_redirect - is_keepalive {}
        default {
            # "HTTP::header NAME" is "HTTP::header value NAME".
            set args [linsert $args 0 value]
            set sub value
        }
    }
    set rest [lrange $args 1 end]
    switch -- $sub {
        value {
            if {[llength $rest] != 1} { return -code error "wrong # args: HTTP::header value NAME" }
            set idx [hidx [lindex $rest 0]]
            if {[llength $idx] == 0} { return "" }
            # BIG-IP returns one value; with duplicates, the last one.
            return [lindex $headers [expr {[lindex $idx end] + 1}]]
        }
        values {
            set out {}
            foreach i [hidx [lindex $rest 0]] { lappend out [lindex $headers [expr {$i + 1}]] }
            return $out
        }
        count {
            if {[llength $rest] != 1} { return -code error "wrong # args: HTTP::header count NAME" }
            return [llength [hidx [lindex $rest 0]]]
        }
        exists {
            return [expr {[llength [hidx [lindex $rest 0]]] > 0}]
        }
        remove {
            if {[llength $rest] != 1} { return -code error "wrong # args: HTTP::header remove NAME" }
            foreach i [lsort -integer -decreasing [hidx [lindex $rest 0]]] {
                set headers [lreplace $headers $i [expr {$i + 1}]]
            }
            return ""
        }
        names {
            set out {}
            foreach {n v} $headers { lappend out $n }
            return $out
        }
        insert {
            if {[llength $rest] != 2} { return -code error "wrong # args: HTTP::header insert NAME VALUE" }
            lappend headers [lindex $rest 0] [lindex $rest 1]
            return ""
        }
        replace {
            if {[llength $rest] != 2} { return -code error "wrong # args: HTTP::header replace NAME VALUE" }
            set idx [hidx [lindex $rest 0]]
            if {[llength $idx] == 0} {
                lappend headers [lindex $rest 0] [lindex $rest 1]
            } else {
                lset headers [expr {[lindex $idx end] + 1}] [lindex $rest 1]
            }
            return ""
        }
        default {
            return -code error "HTTP::header $sub: not implemented by the shim"
        }
    }
}

proc ::shim::http_host {} {
    variable headers
    set idx [hidx Host]
    if {[llength $idx] == 0} { return "" }
    return [lindex $headers [expr {[lindex $idx 0] + 1}]]
}

proc ::shim::http_uri {} {
    variable req
    return [dict get $req uri]
}

proc ::shim::http_path {} {
    variable req
    set u [dict get $req uri]
    set q [string first "?" $u]
    if {$q >= 0} { set u [string range $u 0 [expr {$q - 1}]] }
    return $u
}

proc ::shim::http_method {} {
    variable req
    return [dict get $req method]
}

proc ::shim::http_respond {args} {
    variable res
    if {[dict get $res outcome] eq "respond"} {
        return -code error "HTTP::respond: a response was already sent"
    }
    set args [lassign $args status]
    if {![string is integer -strict $status] || $status < 100 || $status > 599} {
        return -code error "HTTP::respond: bad status \"$status\""
    }
    set content ""
    set hdrs {}
    while {[llength $args] > 0} {
        set args [lassign $args a]
        switch -- $a {
            -version { set args [lrange $args 1 end] }
            content - -content { set args [lassign $args content] }
            noserver - -noserver {}
            default {
                if {[llength $args] == 0} {
                    return -code error "HTTP::respond: header \"$a\" has no value"
                }
                set args [lassign $args v]
                lappend hdrs $a $v
            }
        }
    }
    dict set res outcome respond
    dict set res status $status
    dict set res body $content
    dict set res respond_headers $hdrs
    return ""
}

# ------------------------------------------------------------ iRule: class --

proc ::shim::dg {name} {
    variable datagroups
    if {![dict exists $datagroups $name]} {
        return -code error "class: data group \"$name\" not found"
    }
    return [dict get $datagroups $name]
}

proc ::shim::class_cmd {sub args} {
    variable datagroups
    switch -- $sub {
        lookup {
            if {[llength $args] != 2} { return -code error "wrong # args: class lookup KEY CLASS" }
            lassign $args key name
            set d [dg $name]
            if {[dict exists $d $key]} { return [dict get $d $key] }
            return ""
        }
        exists {
            return [dict exists $datagroups [lindex $args 0]]
        }
        match {
            set mode bool
            while {[string match -* [lindex $args 0]]} {
                set args [lassign $args opt]
                switch -- $opt {
                    -value { set mode value }
                    -name { set mode name }
                    -- { break }
                    default { return -code error "class match: option $opt not implemented by the shim" }
                }
            }
            if {[llength $args] != 3} { return -code error "wrong # args: class match ?opts? ITEM OP CLASS" }
            lassign $args item op name
            foreach {k v} [dg $name] {
                switch -- $op {
                    equals { set hit [string equal $item $k] }
                    starts_with { set hit [string match "[string map {* \\* ? \\? [ \\[ \\ \\\\} $k]*" $item] }
                    ends_with { set hit [string match "*[string map {* \\* ? \\? [ \\[ \\ \\\\} $k]" $item] }
                    contains { set hit [expr {[string first $k $item] >= 0}] }
                    default { return -code error "class match: operator $op not implemented by the shim" }
                }
                if {$hit} {
                    switch -- $mode { bool { return 1 } value { return $v } name { return $k } }
                }
            }
            if {$mode eq "bool"} { return 0 }
            return ""
        }
        default {
            return -code error "class $sub: not implemented by the shim"
        }
    }
}

# ---------------------------------------------------- iRule: crypto, b64 --

proc ::shim::crypto_verify {args} {
    set alg ""
    set key ""
    set havekey 0
    set sig ""
    set havesig 0
    while {[llength $args] > 1 && [string match -* [lindex $args 0]]} {
        set args [lassign $args opt val]
        switch -- $opt {
            -alg { set alg $val }
            -key { set key $val; set havekey 1 }
            -keyhex {
                if {![regexp {^([0-9a-fA-F][0-9a-fA-F])+$} $val]} {
                    return -code error "CRYPTO::verify: -keyhex is not hex"
                }
                set key [binary format H* $val]
                set havekey 1
            }
            -signature { set sig $val; set havesig 1 }
            -ctx - -final { return -code error "CRYPTO::verify: $opt not implemented by the shim" }
            default { return -code error "CRYPTO::verify: unknown option $opt" }
        }
    }
    if {[llength $args] != 1} {
        return -code error "wrong # args: CRYPTO::verify ?options? DATA"
    }
    switch -- $alg {
        hmac-sha256 {}
        hmac-md5 - hmac-ripemd160 - hmac-sha1 - hmac-sha224 - hmac-sha384 - hmac-sha512 {
            return -code error "CRYPTO::verify: $alg not implemented by the shim"
        }
        default { return -code error "CRYPTO::verify: bad algorithm \"$alg\"" }
    }
    if {!$havekey || !$havesig} {
        return -code error "CRYPTO::verify: -key/-keyhex and -signature are required"
    }
    set mac [::shim::sha::hmac $key [lindex $args 0]]
    return [string equal $mac $sig]
}

proc ::shim::b64decode {s} {
    if {![regexp {^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$} $s]} {
        return -code error "b64decode: invalid base64 input"
    }
    return [binary decode base64 $s]
}

# ---------------------------------------------------------- iRule: misc --

proc ::shim::clock_cmd {sub args} {
    variable now
    variable clicks
    switch -- $sub {
        seconds { return $now }
        clicks { return [incr clicks] }
        default { violation "clock $sub" }
    }
}

proc ::shim::pool_cmd {args} {
    variable pools
    variable res
    if {[llength $args] != 1} {
        return -code error "pool: only \"pool NAME\" is implemented by the shim"
    }
    set p [lindex $args 0]
    if {[lsearch -exact $pools $p] < 0} {
        return -code error "pool: no such pool \"$p\""
    }
    dict set res pool $p
    return ""
}

proc ::shim::log_cmd {args} {
    variable res
    if {[llength $args] == 2} {
        lassign $args facility msg
        if {![regexp {^local[0-7]\.[a-z]*$} $facility]} {
            return -code error "log: bad facility \"$facility\""
        }
    } elseif {[llength $args] == 1} {
        set msg [lindex $args 0]
    } else {
        return -code error "wrong # args: log ?FACILITY? MESSAGE"
    }
    dict lappend res logs $msg
    return ""
}

proc ::shim::event_cmd {args} {
    variable res
    switch -- [join $args " "] {
        "disable" { dict set res events_disabled current }
        "disable all" { dict set res events_disabled all }
        "enable" - "enable all" { dict set res events_disabled "" }
        default { return -code error "event [join $args]: not implemented by the shim" }
    }
    return ""
}

proc ::shim::getfield {str sep n} {
    set parts [split [string map [list $sep \x00] $str] \x00]
    if {$n < 1 || $n > [llength $parts]} { return "" }
    return [lindex $parts [expr {$n - 1}]]
}

proc ::shim::client_addr {} {
    variable req
    return [dict get $req client]
}

# ------------------------------------------------------------ iRule: table --

proc ::shim::tentry {sub key} {
    # Returns the live entry {value created touched timeout lifetime} or "".
    variable table
    variable now
    if {![dict exists $table $sub $key]} { return "" }
    lassign [dict get $table $sub $key] v created touched timeout lifetime
    if {($timeout ne "indefinite" && $now >= $touched + $timeout) ||
        ($lifetime ne "indefinite" && $now >= $created + $lifetime)} {
        dict unset table $sub $key
        return ""
    }
    return [list $v $created $touched $timeout $lifetime]
}

proc ::shim::table_cmd {cmd args} {
    variable table
    variable now
    set sub ""
    set notouch 0
    set mustexist 0
    set excl 0
    set remaining 0
    while {[string match -* [lindex $args 0]] && [llength $args] > 1} {
        set args [lassign $args opt]
        switch -- $opt {
            -subtable { set args [lassign $args sub] }
            -notouch { set notouch 1 }
            -mustexist { set mustexist 1 }
            -excl { set excl 1 }
            -remaining { set remaining 1 }
            -- { break }
            default { return -code error "table: unknown option $opt" }
        }
    }
    set key [lindex $args 0]
    set e [tentry $sub $key]
    switch -- $cmd {
        lookup {
            if {$e eq ""} { return "" }
            if {!$notouch} { dict set table $sub $key [lreplace $e 2 2 $now] }
            return [lindex $e 0]
        }
        set - add - replace {
            lassign $args key value timeout lifetime
            if {$timeout eq ""} { set timeout 180 }
            if {$lifetime eq ""} { set lifetime indefinite }
            if {($cmd eq "add" || $excl) && $e ne ""} { return [lindex $e 0] }
            if {($cmd eq "replace" || $mustexist) && $e eq ""} { return "" }
            dict set table $sub $key [list $value $now $now $timeout $lifetime]
            return $value
        }
        incr {
            set delta [lindex $args 1]
            if {$delta eq ""} { set delta 1 }
            if {$e eq ""} {
                if {$mustexist} { return "" }
                set e [list 0 $now $now 180 indefinite]
            }
            set v [expr {[lindex $e 0] + $delta}]
            dict set table $sub $key [lreplace [lreplace $e 0 0 $v] 2 2 $now]
            return $v
        }
        delete {
            if {$key eq "-all"} {
                dict unset table $sub
            } elseif {$e ne ""} {
                dict unset table $sub $key
            }
            return ""
        }
        timeout - lifetime {
            set i [expr {$cmd eq "timeout" ? 3 : 4}]
            if {$e eq ""} { return -1 }
            if {[llength $args] == 2} {
                set v [lindex $args 1]
                if {$v ne "indefinite" && (![string is integer -strict $v] || $v < 1)} {
                    return -code error "table $cmd: bad value \"$v\""
                }
                dict set table $sub $key [lreplace $e $i $i $v]
                return $v
            }
            return [lindex $e $i]
        }
        default {
            return -code error "table $cmd: not implemented by the shim"
        }
    }
}

# ----------------------------------------------------- Tcl 8.4 restrictions --

proc ::shim::string_cmd {c sub args} {
    switch -- $sub {
        cat - reverse - totitle - is_wide {
            violation "string $sub"
        }
    }
    return [interp invokehidden $c string $sub {*}$args]
}

proc ::shim::binary_cmd {c sub args} {
    switch -- $sub {
        format - scan {}
        default { violation "binary $sub" }
    }
    return [interp invokehidden $c binary $sub {*}$args]
}

# lint reports source constructs Tcl 8.4 cannot parse or evaluate.
proc ::shim::lint {src} {
    set v {}
    foreach line [split $src \n] {
        if {[regexp {^\s*#} $line]} { continue }
        if {[string first "\{*\}" $line] >= 0} { lappend v "{*} expansion" }
        if {[string first "**" $line] >= 0} { lappend v "** operator" }
        if {[regexp {\m(dict|lmap|try|throw|apply|coroutine|lassign|lrepeat|lreverse|tailcall)\M} $line -> w]} {
            lappend v $w
        }
        if {[regexp {\mclock\s+milliseconds\M} $line]} { lappend v "clock milliseconds" }
    }
    return [lsort -unique $v]
}

proc ::shim::newinterp {} {
    set c [interp create -safe]
    foreach cmd {dict lmap try throw apply coroutine yield yieldto tailcall lassign lrepeat lreverse zlib chan nre} {
        catch {interp eval $c [list rename $cmd {}]}
        interp alias $c $cmd {} ::shim::violation $cmd
    }
    foreach cmd {clock} {
        catch {interp eval $c [list rename $cmd {}]}
    }
    interp hide $c string
    interp alias $c string {} ::shim::string_cmd $c
    interp hide $c binary
    interp alias $c binary {} ::shim::binary_cmd $c
    interp alias $c clock {} ::shim::clock_cmd
    interp alias $c when {} ::shim::when
    interp alias $c HTTP::header {} ::shim::http_header
    interp alias $c HTTP::host {} ::shim::http_host
    interp alias $c HTTP::uri {} ::shim::http_uri
    interp alias $c HTTP::path {} ::shim::http_path
    interp alias $c HTTP::method {} ::shim::http_method
    interp alias $c HTTP::respond {} ::shim::http_respond
    interp alias $c class {} ::shim::class_cmd
    interp alias $c CRYPTO::verify {} ::shim::crypto_verify
    interp alias $c b64decode {} ::shim::b64decode
    interp alias $c pool {} ::shim::pool_cmd
    interp alias $c log {} ::shim::log_cmd
    interp alias $c event {} ::shim::event_cmd
    interp alias $c getfield {} ::shim::getfield
    interp alias $c table {} ::shim::table_cmd
    interp alias $c IP::client_addr {} ::shim::client_addr
    return $c
}

# ------------------------------------------------------------- script API --

proc now {s} { set ::shim::now $s }
proc datagroup {path records} { dict set ::shim::datagroups $path [dict create {*}$records] }
proc undatagroup {path} { dict unset ::shim::datagroups $path }
proc pools {l} { set ::shim::pools $l }

proc lint {} {
    puts "LINT {\"violations\":[::shim::jsonlist [::shim::lint $::shim::rulesrc]]}"
}

proc request {name hdrs args} {
    set ::shim::headers $hdrs
    set ::shim::req [dict create method GET uri / client 192.0.2.10 events {}]
    foreach {opt val} $args {
        switch -- $opt {
            -method { dict set ::shim::req method $val }
            -uri { dict set ::shim::req uri $val }
            -client { dict set ::shim::req client $val }
            default { error "request: unknown option $opt" }
        }
    }
    set ::shim::res [dict create outcome none status 0 pool "" logs {} events_disabled "" violations {} error ""]
    set c [::shim::newinterp]
    if {[catch {interp eval $c $::shim::rulesrc} err]} {
        dict set ::shim::res outcome error
        dict set ::shim::res error "load: $err"
    } elseif {![dict exists $::shim::req events HTTP_REQUEST]} {
        dict set ::shim::res outcome error
        dict set ::shim::res error "no HTTP_REQUEST event"
    } else {
        set code [catch {interp eval $c [dict get $::shim::req events HTTP_REQUEST]} err]
        if {$code == 1} {
            # On BIG-IP an uncaught error aborts the rule and resets the connection.
            dict set ::shim::res outcome error
            dict set ::shim::res error $err
        } elseif {[dict get $::shim::res outcome] eq "none" && [dict get $::shim::res pool] ne ""} {
            dict set ::shim::res outcome pool
        }
    }
    interp delete $c
    set r $::shim::res
    set hl {}
    foreach {n v} $::shim::headers { lappend hl $n $v }
    puts [format {RESULT {"name":%s,"outcome":%s,"status":%d,"pool":%s,"headers":%s,"logs":%s,"events_disabled":%s,"violations":%s,"error":%s}} \
        [::shim::json $name] [::shim::json [dict get $r outcome]] [dict get $r status] \
        [::shim::json [dict get $r pool]] [::shim::jsonlist $hl] [::shim::jsonlist [dict get $r logs]] \
        [::shim::json [dict get $r events_disabled]] [::shim::jsonlist [dict get $r violations]] \
        [::shim::json [dict get $r error]]]
}

# ------------------------------------------------------------------- main --

if {$argc != 2} {
    puts stderr "usage: tclsh irule_shim.tcl RULE_FILE SCRIPT_FILE"
    exit 2
}
set f [open [lindex $argv 0] r]
fconfigure $f -translation binary
set ::shim::rulesrc [read $f]
close $f
set f [open [lindex $argv 1] r]
fconfigure $f -translation binary
set script [read $f]
close $f
fconfigure stdout -translation lf
eval $script
