# Seed 001_444414cdf44704f4.txt, client1.py (talks to server1.py, the
# socketserver upper-case server; ported as examples/upper_server.rs).
# Changed: the test replaces the port 9999 with the server's. Nothing
# else. It reads input() until the seed's quit word `y`.
# 新建client1.py,输入以下命令,作为客户端请求文件
import socket
c = socket.socket()
c.connect(('localhost',9999)) # 连接到服务器
while True:
    cmd = input('是否退出(y/n)').strip() # 是否退出
    if len(cmd)==0:
        continue
    if cmd=='y' or cmd=='Y': # 退出交流
        break
    c.send(cmd.encode()) # 发送信息
    cmd_res=c.recv(1024) # 接收信息
    print(cmd_res.decode()) # 打印信息
c.close() # 关闭
