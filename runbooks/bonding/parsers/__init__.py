"""Parsers for what the bonding triage commands print, one module per data source.

Each turns a command's text into typed objects and raises :class:`ParseError` (with the line)
on text that is not that command's output. They never run anything.
"""

from .errors import ParseError
from .ethtool import EthtoolInfo, parse_ethtool
from .ip_link import BondDetails, IpLink, parse_ip_details, parse_ip_link
from .nmcli import NmcliConnection, parse_nmcli
from .proc_bonding import (
    Ad8023Info,
    AggregatorInfo,
    LacpPduDetails,
    LacpPortState,
    ProcBonding,
    ProcSlave,
    parse_proc_bonding,
)

__all__ = [
    "Ad8023Info",
    "AggregatorInfo",
    "BondDetails",
    "EthtoolInfo",
    "IpLink",
    "LacpPduDetails",
    "LacpPortState",
    "NmcliConnection",
    "ParseError",
    "ProcBonding",
    "ProcSlave",
    "parse_ethtool",
    "parse_ip_details",
    "parse_ip_link",
    "parse_nmcli",
    "parse_proc_bonding",
]
